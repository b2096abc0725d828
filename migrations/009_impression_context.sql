-- The request's context logged with each impression (issue 20): the user's
-- local hour and weekday (0 = Sunday), the device class, the locale's
-- language and country. NULL when the request did not say.
ALTER TABLE impressions
    ADD COLUMN ctx_hour     smallint CHECK (ctx_hour BETWEEN 0 AND 23),
    ADD COLUMN ctx_weekday  smallint CHECK (ctx_weekday BETWEEN 0 AND 6),
    ADD COLUMN ctx_device   text,
    ADD COLUMN ctx_language text,
    ADD COLUMN ctx_country  text;
