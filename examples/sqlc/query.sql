-- name: CreateTask :one
INSERT INTO sqlc_tasks (title) VALUES ($1) RETURNING id, title, done;

-- name: ListTasks :many
SELECT id, title, done FROM sqlc_tasks ORDER BY id;

-- name: MarkDone :execrows
UPDATE sqlc_tasks SET done = true WHERE id = $1;

-- name: CountTasks :one
SELECT count(*) FROM sqlc_tasks;

-- name: BackendAndTransaction :one
SELECT pg_backend_pid()::int AS pid, txid_current()::bigint AS txid;
