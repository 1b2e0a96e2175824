""" "Latest 7 daily backups of instance X": the relations store vs Glance's rotation query, PostgreSQL.

Run: ``.venv/bin/python benchmarks/bench_relations_rotation.py [--relations 1000000]``

Same machine, same PostgreSQL server (127.0.0.1:5432), same run, the same
images in both databases, generated server-side (``generate_series``):

* ``--instances`` instances (default 20,000) of 50 images each, interleaved in
  time as a cloud writes them (day by day, every instance): 35 daily backups
  (the oldest 28 rotated away, i.e. deleted), 8 weekly (4 deleted), 7
  snapshots; 10 instances per project.
* relations: the propguard store at head, one row per image.
* Glance: a database migrated by Glance 33's own migrations; ``images`` rows
  (deleted ones soft-deleted, as Glance leaves them until a purge) and
  ``image_properties`` as Nova writes them (``instance_uuid``, ``image_type``,
  ``backup_type``, ``user_id``, ``base_image_ref``).

Timed, per random instance, as a caller sees them:

* relations: ``RelationStore.list_for_instance(X, kind="backup",
  backup_type="daily", limit=7)`` (every column, as the API shows them;
  SQLAlchemy Core, psycopg 3), and ``RelationStore.rotation_ids`` (the ids
  ``relations_rotation`` sends on to Glance);
* Glance: ``glance.db.sqlalchemy.api.image_get_all`` with Nova's three
  property filters, ``sort_key=created_at desc`` and Nova's ``limit=200``, as
  the instance's project (what a user's rotation runs as) and as admin (an
  admin-run rotation: every image is a candidate). Glance's ORM also loads
  each image's properties, as the API does.

Then what Nova gains, like for like (:func:`end_to_end`): Nova's exact
rotation ``GET`` with a user token and Nova's service token through the
whole pipeline (this in-process Glance on the database above,
keystonemiddleware, propguard with ``policies/production.conf``, relations
on the store above), ``relations_rotation`` off and on for alternate
requests, as the instance's project and as admin; with it on, the store
reads, the call below the relations layer and Glance's ``image_get_all``
for the forwarded ``id=in:<ids>`` are timed too.

Target for the store: p99 under 5 ms. The databases are dropped at the end
(``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
import warnings

import sqlalchemy as sa

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
RULES = os.path.join(ROOT, "policies", "production.conf")
PER_INSTANCE = 50

# i -> (slot j = i / I, instance k = i % I); slot j: 0..34 daily, 35..42 weekly, 43..49 snapshot
COMMON = """
  SELECT i, i % {I} AS k, i / {I} AS j,
         lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0') AS image_id,
         lpad(to_hex(i % {I}), 8, '0') || '-1111-4111-8111-' || lpad(to_hex(i % {I}), 12, '0')
             AS instance_uuid,
         'project-' || ((i % {I}) / 10) AS project,
         timestamp '2026-01-01' + (i / {I}) * interval '1 day' + (i % {I}) * interval '1 ms' AS ts
  FROM generate_series(0, {N} - 1) AS i
"""
KIND = "CASE WHEN j < 43 THEN 'backup' ELSE 'snapshot' END"
TYPE = "CASE WHEN j < 35 THEN 'daily' WHEN j < 43 THEN 'weekly' END"
DELETED = "(j < 28 OR (j >= 35 AND j < 39))"

RELATIONS_SQL = f"""
INSERT INTO instance_image_relations
  (image_id, instance_uuid, kind, backup_type, origin, service_user_id, service_project_id,
   requester_user_id, requester_project_id, image_owner, instance_project_id, image_name,
   request_id, recorded_at, image_created_at, compute_patched_at, upload_completed_at,
   upload_method, provenance, asserted, mismatches, deleted_at, deleted_via, deleted_reason)
SELECT image_id, instance_uuid, {KIND}, {TYPE}, 'region-one', 'nova', 'service',
       'user-' || k, project, project, project, 'image-' || i,
       'req-' || i, ts, date_trunc('second', ts), ts, ts, 'file', 'service_token_confirmed',
       '{{{{}}}}'::json, '[]'::json,
       CASE WHEN {DELETED} THEN ts + interval '40 days' END,
       CASE WHEN {DELETED} THEN 'service' END,
       CASE WHEN {DELETED} THEN 'rotation' END
FROM ({COMMON}) AS s
"""

IMAGES_SQL = f"""
INSERT INTO images
  (id, name, size, status, created_at, updated_at, deleted_at, deleted, disk_format,
   container_format, owner, min_disk, min_ram, protected, visibility, os_hidden)
SELECT image_id, 'image-' || i, 1048576,
       CASE WHEN {DELETED} THEN 'deleted' ELSE 'active' END,
       date_trunc('second', ts), date_trunc('second', ts),
       CASE WHEN {DELETED} THEN ts + interval '40 days' END, {DELETED},
       'qcow2', 'bare', project, 1, 0, false, 'private', false
FROM ({COMMON}) AS s
"""

PROPERTIES_SQL = f"""
INSERT INTO image_properties (image_id, name, value, created_at, updated_at, deleted_at, deleted)
SELECT image_id, p.name, p.value, date_trunc('second', ts), date_trunc('second', ts),
       CASE WHEN {DELETED} THEN ts + interval '40 days' END, {DELETED}
FROM ({COMMON}) AS s
CROSS JOIN LATERAL (VALUES
    ('instance_uuid', instance_uuid),
    ('image_type', {KIND}),
    ('backup_type', {TYPE}),
    ('user_id', 'user-' || k),
    ('base_image_ref', '9b7c3c5e-2f41-4a2b-8c1d-6e0f5a4b3c21')) AS p(name, value)
WHERE p.value IS NOT NULL
"""


def create_database(name: str) -> str:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def load(url: str, sql: list[str], n: int, instances: int) -> float:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    began = time.perf_counter()
    with engine.connect() as connection:
        for statement in sql:
            connection.execute(sa.text(statement.format(N=n, I=instances)))
        connection.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()
    return time.perf_counter() - began


def instance_uuid(k: int) -> str:
    return f"{k:08x}-1111-4111-8111-{k:012x}"


def percentiles(times: list[float]) -> str:
    times = sorted(times)

    def at(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))] * 1e3

    return (
        f"median {statistics.median(times) * 1e3:7.3f} ms  p95 {at(0.95):7.3f} ms  "
        f"p99 {at(0.99):7.3f} ms  max {times[-1] * 1e3:7.3f} ms"
    )


def end_to_end(glance, instances: int, requests: int, rng: random.Random) -> dict:
    """Nova's exact rotation GET with its service token through the pipeline, as the
    instance's project and as admin, ``relations_rotation`` off and on alternating.

    With it on, the relations layer's own parts are timed too: its store
    queries (``anchor``, ``rotation_ids``) and the call below it (propguard's
    filter and Glance's ``id=in:<ids>`` list).
    """
    sys.path.insert(0, os.path.join(ROOT, "tests", "functional"))
    from relations_db import relations_layer

    layer = relations_layer(glance)
    store, inner = layer.store, layer.application
    from glance.db.sqlalchemy import api as db_api

    parts: dict[str, list[float]] = {"store": [], "below": [], "orm": []}
    spent = {"store": 0.0, "orm": 0.0}
    image_get_all = db_api.image_get_all

    def timed_get_all(*args, **kwargs):
        began = time.perf_counter()
        try:
            return image_get_all(*args, **kwargs)
        finally:
            spent["orm"] += time.perf_counter() - began

    db_api.image_get_all = timed_get_all

    def timed_store(method):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent["store"] += time.perf_counter() - began

        return wrapper

    store.anchor = timed_store(store.anchor)
    store.rotation_ids = timed_store(store.rotation_ids)

    def timed_inner(environ, start_response):
        began = time.perf_counter()
        try:
            return inner(environ, start_response)
        finally:
            parts["below"].append(time.perf_counter() - began)

    layer.application = timed_inner
    service = glance.service_token()
    results: dict[str, dict] = {}
    for who in ("project", "admin"):
        times: dict[str, list[float]] = {"off": [], "on": []}
        parts["store"], parts["below"], parts["orm"] = [], [], []
        for i in range(requests + 10):
            k = rng.randrange(instances)
            roles = ["admin", "member", "reader"] if who == "admin" else ["member", "reader"]
            token = glance.user_token(roles, project_id=f"project-{k // 10}", user_id=f"user-{k}")
            headers = {**glance.headers(token, service)}
            path = ROTATION.format(instance_uuid(k))
            for mode in ("off", "on") if i % 2 else ("on", "off"):
                layer.rotation = mode == "on"
                headers["X-OpenStack-Request-ID"] = f"req-{uuid.uuid4()}"
                spent["store"] = spent["orm"] = 0.0
                below = len(parts["below"])
                began = time.perf_counter()
                response = glance.request("GET", path, headers=headers)
                elapsed = time.perf_counter() - began
                assert response.status_int == 200, response.text
                assert len(response.json["images"]) == 7, (who, mode, len(response.json["images"]))
                if i >= 10:
                    times[mode].append(elapsed)
                    if mode == "on":
                        parts["store"].append(spent["store"])
                        parts["orm"].append(spent["orm"])
                    else:
                        del parts["below"][below:]
                else:
                    del parts["below"][below:]
        results[who] = {**times, "parts": {k: list(v) for k, v in parts.items()}}
    layer.rotation = True
    db_api.image_get_all = image_get_all
    return results


ROTATION = (
    "/v2/images?image_type=backup&backup_type=daily&instance_uuid={}&limit=200"
    "&sort_key=created_at&sort_dir=desc"
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relations", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--glance-queries", type=int, default=300)
    parser.add_argument("--pipeline-requests", type=int, default=300)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import logging

    logging.basicConfig(level=logging.CRITICAL)
    instances = args.relations // PER_INSTANCE
    n = instances * PER_INSTANCE
    suffix = uuid.uuid4().hex[:8]
    relations_db, glance_db = f"pg_bench_relations_{suffix}", f"pg_bench_glance_{suffix}"
    relations_url, glance_url = create_database(relations_db), create_database(glance_db)
    rng = random.Random(7)
    try:
        from propguard.relations.store import RelationStore, create_engine, upgrade

        engine = create_engine(relations_url)
        upgrade(engine)
        took = load(relations_url, [RELATIONS_SQL], n, instances)
        print(f"relations: {n:,} rows, {instances:,} instances, loaded in {took:.0f} s")
        store = RelationStore(engine)
        for _ in range(200):  # warm-up
            store.list_for_instance(
                instance_uuid(rng.randrange(instances)), kind="backup", backup_type="daily", limit=7
            )
        times = []
        for _ in range(args.queries):
            x = instance_uuid(rng.randrange(instances))
            began = time.perf_counter()
            rows = store.list_for_instance(x, kind="backup", backup_type="daily", limit=7)
            times.append(time.perf_counter() - began)
            assert len(rows) == 7 and all(r["backup_type"] == "daily" for r in rows)
        relation_times = times
        id_times = []
        for _ in range(args.queries):
            x = instance_uuid(rng.randrange(instances))
            began = time.perf_counter()
            ids = store.rotation_ids(x, "daily", "region-one")
            id_times.append(time.perf_counter() - began)
            assert len(ids) == 7
        with engine.connect() as connection:
            plan = (
                connection.execute(
                    sa.text(
                        "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM instance_image_relations "
                        "WHERE instance_uuid = :x AND kind = 'backup' AND backup_type = 'daily' "
                        "AND deleted_at IS NULL ORDER BY recorded_at DESC, id DESC LIMIT 7"
                    ),
                    {"x": instance_uuid(123)},
                )
                .scalars()
                .all()
            )
        store.dispose()

        from propguard.inprocess import InProcessGlance

        options = {
            "rules_file": RULES,
            "reload_on_sighup": "false",
            "name_collation": "binary",
            "relations_connection": relations_url,
            "relations_rotation": "true",
            "relations_origins": "nova:region-one",
        }
        with (
            tempfile.TemporaryDirectory(prefix="pg-bench-rot-") as workdir,
            InProcessGlance(
                os.path.join(workdir, "glance"),
                database_url=glance_url,
                extra_filters=[("propguard", "propguard.middleware:filter_factory", options)],
                glance_options={"image_property_quota": -1},
            ) as glance,
        ):
            took = load(glance_url, [IMAGES_SQL, PROPERTIES_SQL], n, instances)
            with sa.create_engine(glance_url).connect() as connection:
                count = connection.execute(
                    sa.text("SELECT count(*) FROM image_properties")
                ).scalar()
            print(
                f"glance:    {n:,} images, {count:,} image_properties rows, loaded in {took:.0f} s"
            )
            from glance import context as glance_context
            from glance.db.sqlalchemy import api as db_api

            def glance_query(k: int, admin: bool) -> list:
                ctx = glance_context.RequestContext(
                    project_id=f"project-{k // 10}",
                    user_id=f"user-{k}",
                    roles=["admin", "member"] if admin else ["member", "reader"],
                    is_admin=admin,
                )
                return db_api.image_get_all(
                    ctx,
                    filters={
                        "image_type": "backup",
                        "backup_type": "daily",
                        "instance_uuid": instance_uuid(k),
                        "deleted": False,
                    },
                    limit=200,
                    sort_key=["created_at"],
                    sort_dir=["desc"],
                )

            results = {}
            for admin in (False, True):
                for _ in range(10):
                    glance_query(rng.randrange(instances), admin)
                times = []
                for _ in range(args.glance_queries):
                    k = rng.randrange(instances)
                    began = time.perf_counter()
                    images = glance_query(k, admin)
                    times.append(time.perf_counter() - began)
                    assert len(images) == 7, len(images)
                results[admin] = times
            pipeline = end_to_end(glance, instances, args.pipeline_requests, rng)
        print()
        print(f"latest 7 daily backups of a random instance ({args.queries} queries):")
        print(f"  relations, full rows     {percentiles(relation_times)}")
        print(f"  relations, ids (rotation){percentiles(id_times)}")
        print(
            f"Glance's rotation query, 3 property filters, limit 200 ({args.glance_queries} queries):"
        )
        print(f"  as the project           {percentiles(results[False])}")
        print(f"  as admin                 {percentiles(results[True])}")
        print(
            f"\nNova's rotation GET through the whole pipeline (keystonemiddleware, propguard, "
            f"relations, Glance), relations_rotation toggled per request, "
            f"{args.pipeline_requests} requests each:"
        )
        for who in ("project", "admin"):
            off, on = pipeline[who]["off"], pipeline[who]["on"]
            print(f"  as {who}, rotation off   {percentiles(off)}")
            print(f"  as {who}, rotation on    {percentiles(on)}")
            parts = pipeline[who]["parts"]
            print(
                f"    on, medians: store queries {statistics.median(parts['store']) * 1e3:.3f} ms,"
                f" below the relations layer (propguard + Glance's id=in list) "
                f"{statistics.median(parts['below']) * 1e3:.3f} ms, of which Glance's "
                f"image_get_all(id=in) {statistics.median(parts['orm']) * 1e3:.3f} ms"
            )
            print(f"    off/on median ratio {statistics.median(off) / statistics.median(on):.2f}x")
        print("\nrelations query plan (EXPLAIN ANALYZE):")
        for line in plan:
            print(f"  {line}")
    finally:
        if not args.keep:
            drop_database(relations_db)
            drop_database(glance_db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
