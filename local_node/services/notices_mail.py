"""The one email a notice makes: that there is something to look at, and a link.

No personal data, by design: no child's name, no national or local id, no council,
no service — an email leaves the council's systems and may be read anywhere. The
practitioner signs in to the node to see the notice (docs/notices.md).
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from local_node.config import NoticesSection

SUBJECT = "Signpost: something new for you to look at"


def message(settings: NoticesSection, to: str) -> EmailMessage:
    """The whole email.

    >>> m = message(NoticesSection(base_url="https://signpost.esx.gov.uk/"), "a@esx.gov.uk")
    >>> m["Subject"], m.get_content().splitlines()[2]
    ('Signpost: something new for you to look at', 'https://signpost.esx.gov.uk/notices')
    """
    msg = EmailMessage()
    msg["From"] = settings.from_address
    msg["To"] = to
    msg["Subject"] = SUBJECT
    msg.set_content(
        "There is something new for you to look at in Signpost. Sign in to see it:\n\n"
        f"{settings.base_url.rstrip('/')}/notices\n\n"
        "This email holds no details on purpose.\n")
    return msg


class Mailer:
    def __init__(self, settings: NoticesSection) -> None:
        self.settings = settings

    async def send(self, to: str) -> None:
        s = self.settings
        await aiosmtplib.send(message(s, to), hostname=s.smtp_host, port=s.smtp_port,
                              timeout=s.smtp_timeout, start_tls=s.smtp_starttls)
