// Starts GOV.UK Frontend's components (the error summary takes focus, the service
// navigation's menu) once the browser shows it can run them. A file of its own: the
// pages' CSP allows no inline script.
import { initAll } from "/static/govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();
