-- Matching models estimated from the hub's own records (`national-hub model train`):
-- m by EM on candidate pairs, u by random sampling. The resolver uses the newest;
-- older versions stay, so an explanation or a review naming one can be traced.

CREATE TABLE match_models (
    version     text PRIMARY KEY,
    parameters  jsonb NOT NULL,      -- protocol.matching.Model.to_dict()
    trained_at  timestamptz NOT NULL DEFAULT now(),
    summary     jsonb NOT NULL       -- what training saw: pairs sampled, records, seconds
);
CREATE INDEX match_models_trained_at ON match_models (trained_at);
