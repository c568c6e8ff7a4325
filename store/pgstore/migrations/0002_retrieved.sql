-- postie pgstore schema, version 2: EXPIRE (RFC 2449 §6.7).

-- When the message was first retrieved in full (RETR, or TOP of every
-- line), recorded when the session that retrieved it ends; NULL while it
-- never was. A login removes the messages retrieved longer ago than the
-- user's EXPIRE policy.
ALTER TABLE postie_messages ADD COLUMN retrieved timestamptz;
