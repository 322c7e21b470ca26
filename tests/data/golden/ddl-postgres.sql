-- app.Launch: schema version 1
CREATE TABLE IF NOT EXISTS "app_launch" (
    "id" text NOT NULL,
    "event" text NOT NULL,
    "ts" timestamptz,
    "received_at" timestamptz NOT NULL,
    "channel" text,
    "cold_start" boolean,
    "duration_ms" bigint,
    "context" jsonb,
    "data" jsonb NOT NULL,
    "_file" text NOT NULL,
    "_loaded_at" timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("id")
);

-- checkout: schema version 2 (columns from all 2 versions)
CREATE TABLE IF NOT EXISTS "checkout" (
    "id" text NOT NULL,
    "event" text NOT NULL,
    "ts" timestamptz,
    "received_at" timestamptz NOT NULL,
    "channel" text,
    "user_id" text,
    "phone" text,
    "coupon" text,
    "revenue" double precision,
    "is_first_order" boolean,
    "properties" jsonb,
    "data" jsonb NOT NULL,
    "_file" text NOT NULL,
    "_loaded_at" timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("id")
);

-- page_view: schema version 1
CREATE TABLE IF NOT EXISTS "page_view" (
    "id" text NOT NULL,
    "event" text NOT NULL,
    "ts" timestamptz,
    "received_at" timestamptz NOT NULL,
    "channel" text,
    "url" text,
    "pageTitle" text,
    "referrer-url" text,
    "scroll_depth" bigint,
    "tags" jsonb,
    "anything" jsonb,
    "mixed" jsonb,
    "schema_version" bigint,
    "data" jsonb NOT NULL,
    "_file" text NOT NULL,
    "_loaded_at" timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY ("id")
);
