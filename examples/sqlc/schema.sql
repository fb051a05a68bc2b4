-- The example's table. Applied by the test (and by your own migrations tool).
CREATE TABLE IF NOT EXISTS sqlc_tasks (
    id    bigserial PRIMARY KEY,
    title text      NOT NULL,
    done  boolean   NOT NULL DEFAULT false
);
