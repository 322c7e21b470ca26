-- app.Launch: schema version 1
CREATE TABLE IF NOT EXISTS `app_launch` (
    `id` STRING NOT NULL,
    `event` STRING NOT NULL,
    `ts` TIMESTAMP,
    `received_at` TIMESTAMP NOT NULL,
    `channel` STRING,
    `cold_start` BOOL,
    `duration_ms` INT64,
    `context` JSON,
    `data` JSON NOT NULL,
    PRIMARY KEY (`id`) NOT ENFORCED
)
PARTITION BY DATE(`received_at`);

-- checkout: schema version 2 (columns from all 2 versions)
CREATE TABLE IF NOT EXISTS `checkout` (
    `id` STRING NOT NULL,
    `event` STRING NOT NULL,
    `ts` TIMESTAMP,
    `received_at` TIMESTAMP NOT NULL,
    `channel` STRING,
    `user_id` STRING,
    `phone` STRING,
    `coupon` STRING,
    `revenue` FLOAT64,
    `is_first_order` BOOL,
    `properties` JSON,
    `data` JSON NOT NULL,
    PRIMARY KEY (`id`) NOT ENFORCED
)
PARTITION BY DATE(`received_at`);

-- page_view: schema version 1
CREATE TABLE IF NOT EXISTS `page_view` (
    `id` STRING NOT NULL,
    `event` STRING NOT NULL,
    `ts` TIMESTAMP,
    `received_at` TIMESTAMP NOT NULL,
    `channel` STRING,
    `url` STRING,
    `pageTitle` STRING,
    `referrer_url` STRING,
    `scroll_depth` INT64,
    `tags` JSON,
    `anything` JSON,
    `mixed` JSON,
    `schema_version` INT64,
    `data` JSON NOT NULL,
    PRIMARY KEY (`id`) NOT ENFORCED
)
PARTITION BY DATE(`received_at`);
