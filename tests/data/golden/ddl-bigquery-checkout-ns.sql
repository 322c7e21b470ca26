-- checkout: schema version 2 (columns from all 2 versions)
CREATE TABLE IF NOT EXISTS `analytics`.`checkout` (
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
