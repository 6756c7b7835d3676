-- Warehouse layout owned by the package (dbt owns staging and marts).
-- Idempotent: applied once at start-up by `vru warehouse apply-schema` (the deploy's init job,
-- `vru run` before it starts Airflow), as an administrator; tasks never run DDL. vru.warehouse
-- sets lock_timeout first, so this fails fast instead of queueing behind a BI reader's locks.

-- ----------------------------------------------------------------------------------------------
-- The pipeline role: every Airflow task, dbt and GX connect as vru_pipeline, which owns the
-- schemas and everything in them but is not a superuser and cannot create roles or databases.
-- Run as the administrator: create it, hand it the schemas and what an earlier version created in
-- them as the administrator, then create the tables as vru_pipeline (set role) so it owns them.
do $$
begin
    if not exists (select from pg_roles where rolname = 'vru_pipeline') then
        create role vru_pipeline nologin nosuperuser nocreatedb nocreaterole;
    end if;
    if (select rolsuper from pg_roles where rolname = current_user) then
        -- whatever was granted to it by hand is taken back
        alter role vru_pipeline nosuperuser nocreatedb nocreaterole noreplication nobypassrls;
    elsif not pg_has_role(current_user, 'vru_pipeline', 'member') then
        -- an administrator that is not a superuser (CREATEROLE, as on managed services) must be
        -- a member to hand it the schemas and create tables as it
        grant vru_pipeline to current_user;
    end if;
end
$$;
do $$
declare
    s text;
    r record;
begin
    -- dbt runs `create schema if not exists` for its schemas, which needs CREATE on the database
    execute format('grant connect, create, temporary on database %I to vru_pipeline', current_database());
    foreach s in array array['raw', 'staging', 'marts', 'marts_build', 'audit', 'restricted'] loop
        if not exists (select from pg_namespace where nspname = s) then
            execute format('create schema %I authorization vru_pipeline', s);
        else
            execute format('alter schema %I owner to vru_pipeline', s);
        end if;
    end loop;
    for r in select c.oid::regclass as rel, c.relkind
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname in ('raw', 'staging', 'marts', 'marts_build', 'audit', 'restricted')
                and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
                and c.relowner <> 'vru_pipeline'::regrole
                -- a sequence owned by a column follows its table
                and not (c.relkind = 'S' and exists (select from pg_depend d where d.objid = c.oid
                                                      and d.classid = 'pg_class'::regclass and d.deptype in ('a', 'i')))
    loop
        execute format('alter %s %s owner to vru_pipeline',
                       case r.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                      when 'f' then 'foreign table' when 'S' then 'sequence' else 'table' end,
                       r.rel);
    end loop;
end
$$;
set role vru_pipeline;

create schema if not exists raw;
create schema if not exists staging;
create schema if not exists marts;
create schema if not exists audit;

-- One row per load attempt of one partition (force-month) of one dataset.
create table if not exists audit.loads (
    load_id            bigserial primary key,
    dataset            text        not null,          -- e.g. 'police.stop_searches'
    force_id           text        not null,
    month              date        not null,          -- publication month (first day)
    origin             text        not null,          -- 'api' | 'archive_csv'
    sha256             text,                          -- of the bytes kept in the archive
    archive_path       text,
    status             text        not null,          -- loaded | replaced | failed | refused
    rows_read          integer     not null default 0,
    rows_loaded        integer     not null default 0,
    rows_quarantined   integer     not null default 0,
    previous_load_id   bigint,                        -- the load this one replaced
    previous_sha256    text,
    previous_rows      integer,
    error              text,
    run_id             text,
    started_at         timestamptz not null default now(),
    finished_at        timestamptz,
    constraint loads_rows_balance check (status not in ('loaded', 'replaced')
                                         or rows_read = rows_loaded + rows_quarantined)
);
create index if not exists loads_partition_idx on audit.loads (dataset, force_id, month, load_id desc);

-- Key/value state a feed keeps between nights (e.g. the source's last-updated date).
create table if not exists audit.feed_state (
    dataset     text not null,
    key         text not null,
    value       text not null,
    updated_at  timestamptz not null default now(),
    primary key (dataset, key)
);

-- Rows that could not be parsed: kept with the reason and where they came from.
create table if not exists raw.quarantine (
    load_id     bigint      not null,
    dataset     text        not null,
    force_id    text        not null,
    month       date        not null,
    origin      text        not null,
    sha256      text        not null,
    line_no     integer     not null,                 -- CSV line (header = 1) or JSON array index
    reason      text        not null,
    record      text        not null,                 -- the row as received
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine_partition_idx on raw.quarantine (dataset, force_id, month);

-- Stop and search records as published (data.police.uk API or monthly archive CSV), typed. Where
-- a row came from (origin, the archived file's sha256) is its load's, in audit.loads by load_id:
-- on every row they were 75 of ~300 bytes, and a quarter of the server's COPY time
-- (benchmarks/README.md, the loader).
create table if not exists raw.stop_searches (
    load_id                              bigint      not null,
    force_id                             text        not null,
    month                                date        not null,
    line_no                              integer     not null,
    type                                 text,
    involved_person                      boolean,
    datetime                             timestamptz,
    operation                            boolean,
    operation_name                       text,
    latitude                             double precision,
    longitude                            double precision,
    street_id                            bigint,
    street_name                          text,
    gender                               text,
    age_range                            text,
    self_defined_ethnicity               text,
    officer_defined_ethnicity            text,
    legislation                          text,
    object_of_search                     text,
    outcome                              text,
    outcome_id                           text,
    outcome_linked_to_object_of_search   boolean,
    removal_of_more_than_outer_clothing  boolean,
    loaded_at                            timestamptz not null default now()
);
-- Finds a force-month to replace. A force-month is COPYed in one go, so its rows sit in adjacent
-- blocks and a BRIN index narrows the delete to them at almost no cost per loaded row; a B-tree
-- (unique on force_id, month, line_no, or on force_id, month) cost 30-50% of COPY time
-- (benchmarks/README.md). The loader numbers the lines and replaces a force-month whole, and
-- the raw suite checks the (force_id, month, line_no) key.
alter table raw.stop_searches drop column if exists origin, drop column if exists sha256;
drop index if exists raw.stop_searches_record_key;
drop index if exists raw.stop_searches_partition_idx;
create index if not exists stop_searches_partition_brin on raw.stop_searches using brin (month, force_id);

-- What the source says it has published: one row per (force, month) ever listed as available
-- (data.police.uk crimes-street-dates). Tells a month the force did not publish from a zero.
create table if not exists raw.police_availability (
    force_id         text        not null,
    month            date        not null,
    first_listed_at  timestamptz not null default now(),
    last_listed_at   timestamptz not null default now(),
    checked_version  text,                            -- source last-updated date when last fetched
    checked_at       timestamptz,
    primary key (force_id, month)
);
alter table raw.police_availability add column if not exists checked_version text;
alter table raw.police_availability add column if not exists checked_at timestamptz;

-- Every Great Expectations result, one row per expectation per validation.
create table if not exists audit.validation_results (
    validation_id   text        not null,
    run_id          text,
    stage           text        not null,             -- raw | staging | marts
    dataset         text        not null,
    suite           text        not null,
    expectation     text        not null,
    column_name     text,
    severity        text        not null,             -- critical | warning
    success         boolean     not null,
    observed        jsonb,
    meaning         text,
    validated_at    timestamptz not null default now()
);
create index if not exists validation_results_run_idx on audit.validation_results (validated_at desc);

-- ----------------------------------------------------------------------------------------------
-- Edition feeds: a publisher's whole table, re-published from time to time (Home Office knife
-- crime open data table; later HES). Each edition is one load (audit.loads row with no force or
-- month), its figures are kept side by side with the earlier editions', and the current figure
-- of a cell is the latest edition's that has it.
alter table audit.loads alter column force_id drop not null;
alter table audit.loads alter column month drop not null;
alter table audit.loads add column if not exists rows_skipped integer not null default 0;
-- The transaction that wrote the load: a transform run compares it with the snapshot it took at
-- its start, to tell whether raw changed under it (vru.pipeline.loads_since).
alter table audit.loads add column if not exists xact xid8 not null default pg_current_xact_id();
alter table audit.loads drop constraint if exists loads_rows_balance;
alter table audit.loads add constraint loads_rows_balance check (
    status not in ('loaded', 'replaced') or rows_read = rows_loaded + rows_quarantined + rows_skipped);
alter table raw.quarantine alter column force_id drop not null;
alter table raw.quarantine alter column month drop not null;

-- One row per edition fetched: what the publisher's server said about it.
create table if not exists audit.editions (
    load_id          bigint      primary key,         -- audit.loads row of the edition
    dataset          text        not null,
    url              text        not null,
    etag             text,
    last_modified    text,                            -- HTTP Last-Modified, as sent
    file_format      text        not null,            -- csv | ods | xlsx
    sha256           text        not null,
    size_bytes       bigint      not null,
    figures          integer     not null,            -- data cells loaded
    figures_added    integer     not null,            -- cells no earlier edition had
    figures_revised  integer     not null,            -- cells whose value changed
    figures_dropped  integer     not null,            -- cells an earlier edition had and this lacks
    fetched_at       timestamptz not null default now()
);
create index if not exists editions_dataset_idx on audit.editions (dataset, load_id desc);

-- The cells an edition changed against the figures current before it (the revisions a
-- statistician asks about). `cell` names the figure in the dataset's own key columns.
create table if not exists audit.revisions (
    dataset           text    not null,
    load_id           bigint  not null,              -- the edition that made the change
    previous_load_id  bigint,                        -- the edition whose figure was current
    cell              jsonb   not null,
    change            text    not null,              -- added | revised | dropped
    previous_value    numeric,
    new_value         numeric,
    previous_marker   text,                          -- suppression marker, when not a number
    new_marker        text
);
create index if not exists revisions_load_idx on audit.revisions (dataset, load_id);
-- Figures are not all counts (the ONS publishes unrounded percentages): values are numeric.
-- Changed once (a warehouse made before had bigint): no lock on the table when already done.
do $$
begin
    if exists (select from information_schema.columns where table_schema = 'audit'
               and table_name = 'revisions' and column_name = 'new_value' and data_type = 'bigint') then
        alter table audit.revisions alter column previous_value type numeric,
            alter column new_value type numeric;
    end if;
end
$$;

-- Rows of a published table that are not figures (title lines, footnotes, totals rows),
-- recognised by the parser and kept here with what they were taken for.
create table if not exists raw.source_notes (
    load_id   bigint  not null,
    dataset   text    not null,
    sheet     text,
    line_no   integer not null,
    kind      text    not null,                      -- preamble | footnote | total
    record    text    not null
);
create index if not exists source_notes_load_idx on raw.source_notes (load_id);

-- Home Office police recorded crime open data: offences involving a knife or sharp instrument,
-- per police force area, financial year and quarter, per offence. One row per cell per edition.
create table if not exists raw.knife_offences (
    load_id            bigint   not null,            -- the edition (audit.loads / audit.editions)
    sha256             text     not null,
    sheet              text,                         -- ODS sheet; null for CSV
    line_no            integer  not null,            -- row in the sheet or file (header row counted)
    financial_year     text     not null,            -- as published, e.g. '2019/20'
    fy_start           smallint not null,            -- 2019 for 2019/20 (April 2019 - March 2020)
    financial_quarter  smallint not null,            -- 1 = April-June ... 4 = January-March
    force_name         text     not null,            -- as published
    force_id           text     not null,            -- canonical data.police.uk id (seed force_name_variants)
    offence            text     not null,            -- as published
    offences           integer,                      -- null when the publisher withheld the figure
    value_marker       text,                         -- the publisher's marker when offences is null
    loaded_at          timestamptz not null default now()
);
create index if not exists knife_offences_cell_idx
    on raw.knife_offences (force_id, fy_start, financial_quarter, offence, load_id desc);

-- ----------------------------------------------------------------------------------------------
-- NHS Hospital Episode Statistics (HES), Admitted Patient Care, external causes: assault by sharp
-- object (ICD-10 X99), England, per financial year (vru.feeds.hes). Long: one row per financial
-- year, geography, cause and measure per edition (a cell); editions side by side, as above.
-- Rows of other causes, totals, titles and footnotes are kept in raw.source_notes, not here.
create table if not exists raw.sharp_object_admissions (
    load_id            bigint   not null,            -- the edition (audit.loads / audit.editions)
    sha256             text     not null,
    sheet              text,                         -- ODS sheet; null for CSV
    line_no            integer  not null,            -- row in the sheet or file (one per measure)
    financial_year     text     not null,            -- as published, e.g. '2019-20'
    fy_start           smallint not null,            -- 2019 for 2019-20 (April 2019 - March 2020)
    geography_code     text     not null,            -- ONS code: E92000001 (England), the publication's level
    geography_name     text     not null,            -- 'England'
    cause_code         text     not null,            -- ICD-10 3-character assault code X85-Y09 ('X99')
    cause_description  text,                         -- as published, e.g. 'Assault by sharp object'
    measure            text     not null,            -- finished_consultant_episodes | admissions |
                                                     -- emergency_admissions | male | female |
                                                     -- gender_unknown | a published age column:
                                                     -- age_0, age_1_4 ... age_85_89, age_90_plus
    value              integer,                      -- null when withheld (HES shows 1-7 as '*')
    value_marker       text,                         -- the publisher's marker when value is null ('(blank)': empty cell)
    loaded_at          timestamptz not null default now()
);
create index if not exists sharp_object_admissions_cell_idx
    on raw.sharp_object_admissions (geography_code, fy_start, cause_code, measure, load_id desc);

-- ----------------------------------------------------------------------------------------------
-- ONS police force area data tables: knife or sharp instrument offences per police force area,
-- selected offence and rolling 12-month period (vru.feeds.ons_pfa), from the table by offence
-- and the series table of each edition. Long: one row per area, offence, period and measure
-- per edition (a cell); editions side by side, as above. Regions, national totals, British
-- Transport Police, titles and footnotes are kept in raw.source_notes, not here.
create table if not exists raw.pfa_knife_offences (
    load_id        bigint   not null,                -- the edition (audit.loads / audit.editions)
    sha256         text     not null,
    sheet          text     not null,                -- as read (some carry trailing spaces)
    line_no        integer  not null,                -- the row in its sheet, as Excel numbers it
    table_kind     text     not null,                -- by_offence (one period) | series (the total by period)
    area_code      text     not null,                -- ONS code of the police force area (E23..., W15...)
    area_name      text     not null,                -- as published, footnote digits cut
    force_id       text     not null,                -- canonical id (seed force_area_codes)
    offence        text     not null,                -- total_selected | attempted_murder | threats_to_kill |
                                                     -- assault_with_injury | robbery |
                                                     -- rape_and_sexual_assault | homicide
    offence_name   text     not null,                -- as published, footnote digits cut
    period_label   text     not null,                -- as published: 'year ending June 2018', 'Apr ''10 to Mar ''11'
    period_end     date     not null,                -- last day of the 12-month period
    measure        text     not null,                -- offences | percent_knife
    value          numeric,                          -- as stored, unrounded; null when the ONS gives a marker
    value_marker   text,                             -- the marker (NA, N/A, -, ..) when value is null
    loaded_at      timestamptz not null default now()
);
create index if not exists pfa_knife_offences_cell_idx
    on raw.pfa_knife_offences (area_code, offence, period_end, measure, load_id desc);

-- ----------------------------------------------------------------------------------------------
-- Incidents: a failed critical validation, a feed failing all retries, a feed past its expected
-- publication date, or any other task failure (vru.alerts). One row per incident: repeats of
-- the same problem while it is open add to `occurrences` instead of opening (and alerting) again.
create table if not exists audit.incidents (
    incident_id    bigserial primary key,
    incident_key   text not null,        -- stable identity, e.g. 'task:vru_transform.validate_raw', 'stale:police.stop_searches'
    kind           text not null,        -- validation_failed | feed_failed | feed_stale | task_failed
    dataset        text,
    stage          text,
    summary        text not null,        -- one plain-English line for monitoring staff
    detail         text,                 -- the error text (never row-level data)
    opened_at      timestamptz not null default now(),
    last_seen_at   timestamptz not null default now(),
    resolved_at    timestamptz,
    occurrences    integer not null default 1,
    notified_at    timestamptz,
    notified_via   text,                 -- e.g. 'email,webhook' or 'none configured'
    notify_error   text
);
-- At most one open incident per key: what makes "once per incident" hold under concurrent
-- callbacks (the insert of the second one turns into an update of the first).
create unique index if not exists incidents_open_key on audit.incidents (incident_key) where resolved_at is null;

-- ----------------------------------------------------------------------------------------------
-- A&E assault attendances (ISTV extracts from emergency departments): row-level, personal-adjacent.
-- They live in the `restricted` schema and nowhere else: no grant to vru_bi_reader or PUBLIC, dbt
-- staging of them is built in this schema too, and only the suppressed monthly counts
-- (marts.ae_assault_monthly) leave it.
create schema if not exists restricted;
revoke all on schema restricted from public;

-- One row per assault attendance of a loaded extract (file). An extract covers one site and one
-- reporting period; a re-sent extract for the same site and period replaces the earlier one.
create table if not exists restricted.ae_attendances (
    load_id                        bigint   not null,   -- audit.loads row of the extract
    sha256                         text     not null,   -- of the file as received (archived)
    line_no                        integer  not null,   -- CSV line (header = 1)
    site_code                      text     not null,   -- SITE CODE (OF TREATMENT), ODS code
    force_id                       text     not null,   -- force area of the site (seed ae_sites)
    reporting_period_start         date     not null,
    reporting_period_end           date     not null,
    arrival_at                     timestamp not null,  -- ARRIVAL DATE AND TIME AT A&E (local time)
    assault_date                   date     not null,   -- ASSAULT DATE AND TIME: the date part
    assault_time                   time,                -- null when the patient could not say
    assault_method                 text     not null,   -- ISTV code (seed istv_assault_methods)
    assault_method_other           text,                -- ASSAULT METHOD OTHER DESCRIPTION (free text)
    assault_location_type          text     not null,   -- ISTV code (seed istv_location_types)
    assault_location_description   text,                -- free text
    age_band                       text,                -- null when the department does not share it
    sex                            text,                -- null when the department does not share it
    loaded_at                      timestamptz not null default now()
);
create index if not exists ae_attendances_extract_idx
    on restricted.ae_attendances (site_code, reporting_period_start, reporting_period_end);

-- Rows of an extract that could not be loaded, with the reason: kept here, not in
-- raw.quarantine, because the row as received is row-level A&E data.
create table if not exists restricted.ae_quarantine (
    load_id     bigint  not null,
    sha256      text    not null,
    file_name   text    not null,
    line_no     integer not null,
    column_name text,                                  -- the column at fault, when one is
    reason      text    not null,                      -- names line and column, never free text
    record      text    not null,                      -- the row as received
    quarantined_at timestamptz not null default now()
);
create index if not exists ae_quarantine_load_idx on restricted.ae_quarantine (load_id);

-- Every file that arrived in the A&E landing area and what became of it (no row-level data:
-- names, sizes, checksums, counts and reasons). `loads` has the load itself.
create table if not exists audit.landed_files (
    landed_id       bigserial   primary key,
    dataset         text        not null,              -- 'ae.attendances'
    file_name       text        not null,              -- as it arrived
    sha256          text        not null,
    size_bytes      bigint      not null,
    outcome         text        not null,              -- loaded | replaced | duplicate | rejected
    load_id         bigint,                            -- audit.loads row (null for a duplicate)
    duplicate_of    bigint,                            -- the load that already had these bytes
    site_code       text,
    reporting_period_start date,
    reporting_period_end   date,
    rows_loaded     integer     not null default 0,
    rows_quarantined integer    not null default 0,
    reason          text,                              -- why rejected (line, column), for people
    moved_to        text,                              -- where the file went after commit
    run_id          text,
    processed_at    timestamptz not null default now()
);
create index if not exists landed_files_dataset_idx on audit.landed_files (dataset, landed_id desc);

-- Every A&E figure ever published, per cell of marts.ae_assault_monthly (force, month, age band,
-- measure) and value: ae_assault_monthly withholds a force-month whose new figure would differ
-- by 1 to 4 from any figure published for it before (the rule is in the model's header). Written
-- by the model's post-hook (macro record_ae_publication), read by the model.
create table if not exists restricted.ae_published_cells (
    force_id            text        not null,
    month               date        not null,
    age_band            text        not null,
    measure             text        not null,             -- attendances | knife_or_sharp_attendances
    value               integer     not null,
    first_published_at  timestamptz not null default now(),
    primary key (force_id, month, age_band, measure, value)
);

-- ----------------------------------------------------------------------------------------------
-- Write-audit-publish (vru.publish). dbt builds the marts in `marts_build`, which no BI role can
-- read; the dbt tests and the GX mart suites run there; only then are the changed rows applied to
-- the published tables in `marts`, every mart in one transaction. A run whose checks fail never
-- touches `marts`. Incremental marts stay incremental: their build tables persist between runs.
create schema if not exists marts_build;
revoke all on schema marts_build from public;

-- One row per promotion of the build to the published marts (what BI tools read).
create table if not exists audit.publications (
    publication_id  bigserial   primary key,
    run_id          text,
    published_at    timestamptz not null default now(),
    duration_ms     numeric     not null,
    -- per mart: {"rows": n, "inserted": n, "deleted": n, "replaced": bool} (rows of the mart
    -- table, never counts of records behind a figure)
    marts           jsonb       not null
);
-- The snapshot of raw the published build was made from (the transform's validate_raw): the loads
-- it did not see are the partitions the next run validates (a feed's changed_partitions).
alter table audit.publications add column if not exists raw_snapshot pg_snapshot;
-- The partitions whose data changed since the last publication: those of every successful load
-- (the statuses of vru.feed.SUCCESSFUL_LOADS) that the last publication's raw snapshot did not see
-- (loaded after the run that published began, or under a run whose gate failed: those are checked
-- again until a run publishes them); with no publication (or one without a snapshot), every one.
-- The one statement of that rule: the gates' scoped validation reads it (a feed's
-- changed_partitions) and so do dbt's scoped tests (macros/get_where_subquery.sql).
create or replace view audit.changed_partitions as
select distinct dataset, force_id, month from audit.loads
where status in ('loaded', 'replaced')
and not coalesce(pg_visible_in_snapshot(xact, (select raw_snapshot from audit.publications
    order by publication_id desc limit 1)), false);

-- The programme effect estimates (vru.effects_build), written by the transform after dbt built the
-- outcome marts and read only by the dbt models vru_programme_effect and vru_programme_event_study
-- (a dbt source): pipeline-only, in `staging`, which no BI role reads. Replaced whole each run.
create table if not exists staging.programme_effect_estimates (
    measure                             text        not null,
    measure_label                       text        not null,
    role                                text        not null,      -- outcome | context
    method                              text        not null,
    analysis_window                     text        not null,
    status                              text        not null,      -- estimated | not interpretable | not possible | not available
    status_reason                       text        not null,
    estimate_pct                        double precision,
    ci_low_pct                          double precision,
    ci_high_pct                         double precision,
    log_rate_effect                     double precision,
    std_error                           double precision,
    p_value_model                       double precision,
    p_value_permutation                 double precision,
    permutations                        integer     not null,
    pre_trend_p_value                   double precision,
    pre_trend_leads_tested              integer     not null,
    pre_trend_failed                    boolean,
    areas_used                          integer     not null,
    funded_areas_used                   integer     not null,
    comparison_areas_used               integer     not null,
    quarters_used                       integer     not null,
    area_quarters_used                  integer     not null,
    funded_area_quarters_used           integer     not null,
    area_quarters_excluded              integer     not null,
    excluded_missing                    integer     not null,
    excluded_suppressed                 integer     not null,
    excluded_partial_coverage           integer     not null,
    excluded_series_break               integer     not null,
    excluded_no_population              integer     not null,
    excluded_zero_count                 integer     not null,
    excluded_no_quarter_before_funding  integer     not null,
    excluded_no_comparison_in_quarter   integer     not null,
    excluded_outside_window             integer     not null,
    first_quarter_start                 date,
    last_quarter_start                  date,
    edition_date                        date,
    edition_source                      text        not null,
    run_id                              text,
    estimated_at                        timestamptz not null default now(),
    primary key (measure, method, analysis_window)
);
create table if not exists staging.programme_event_study_estimates (
    measure                 text        not null,
    method                  text        not null,
    relative_quarter        integer     not null,
    is_reference            boolean     not null,
    estimate_pct            double precision,
    ci_low_pct              double precision,
    ci_high_pct             double precision,
    log_rate_effect         double precision,
    std_error               double precision,
    funded_area_quarters    integer     not null,
    run_id                  text,
    estimated_at            timestamptz not null default now(),
    primary key (measure, method, relative_quarter)
);
-- What each measure's estimates were made from (vru.effects_build.input_fingerprint): a measure
-- whose panel, spec and estimator are unchanged keeps its estimates instead of being re-estimated.
alter table staging.programme_effect_estimates add column if not exists input_fingerprint text;
alter table staging.programme_event_study_estimates add column if not exists input_fingerprint text;

-- Back to the administrator: roles and grants.
reset role;

-- ----------------------------------------------------------------------------------------------
-- Read-only access for BI tools: the group role vru_bi_reader reads the marts and the data
-- quality results in audit, and nothing else (no raw, no staging, no restricted schema). Login
-- roles join it (`vru warehouse bi-url`). vru.publish grants each mart it creates in `marts`; the
-- default privileges cover anything else created there. Never `marts_build` (unchecked builds).
do $$
begin
    if not exists (select from pg_roles where rolname = 'vru_bi_reader') then
        create role vru_bi_reader nologin;
    end if;
end
$$;
grant usage on schema marts, audit to vru_bi_reader;
grant select on all tables in schema marts to vru_bi_reader;
alter default privileges in schema marts grant select on tables to vru_bi_reader;
alter default privileges for role vru_pipeline in schema marts grant select on tables to vru_bi_reader;
grant select on audit.validation_results, audit.incidents, audit.loads, audit.editions,
    audit.revisions, audit.feed_state to vru_bi_reader;
-- what was published and when: the report says which night's figures BI tools are showing
grant select on audit.publications to vru_bi_reader;

-- A BI query cannot hold locks (and block apply-schema or a dbt rebuild) for ever: a statement
-- timeout and an idle-in-transaction timeout on the group and on every login in it (role settings
-- are not inherited: each login needs its own; `vru warehouse bi-url` sets them on a new login).
-- Values from VRU_BI_STATEMENT_TIMEOUT / VRU_BI_IDLE_IN_TRANSACTION_TIMEOUT (vru.warehouse).
do $$
declare
    r record;
    statement_timeout text := coalesce(nullif(current_setting('vru.bi_statement_timeout', true), ''), '5min');
    idle_timeout text := coalesce(nullif(current_setting('vru.bi_idle_in_transaction_timeout', true), ''), '10min');
begin
    for r in select 'vru_bi_reader'::name as rolname
             union
             select m.rolname from pg_auth_members a join pg_roles m on m.oid = a.member
              where a.roleid = 'vru_bi_reader'::regrole
    loop
        execute format('alter role %I set statement_timeout = %L', r.rolname, statement_timeout);
        execute format('alter role %I set idle_in_transaction_session_timeout = %L', r.rolname, idle_timeout);
    end loop;
end
$$;

-- ----------------------------------------------------------------------------------------------
-- Disclosure control (issue 12): nothing the BI role reads carries a count of A&E rows by site,
-- area or period, except the suppressed figures of marts.ae_assault_monthly. A per-extract row
-- count is, for an area with one department, the force-month total the mart may withhold, and
-- two successive totals difference to what a late or re-sent extract added.
--
-- audit.landed_files: per-extract rows loaded and set aside, and the file size (which grows with
-- the rows). BI reads the view instead: which files arrived and what became of them, no counts.
revoke select on audit.landed_files from vru_bi_reader;
create or replace view audit.ae_extracts_received as
select landed_id, dataset, file_name, outcome, load_id, duplicate_of, site_code,
       reporting_period_start, reporting_period_end, rows_quarantined > 0 as rows_set_aside,
       reason, run_id, processed_at
from audit.landed_files;
grant select on audit.ae_extracts_received to vru_bi_reader;
-- audit.loads and audit.validation_results: the A&E rows carry row counts per extract (loads) and
-- the restricted table's row count and failing rows (raw-stage results). Row-level security
-- hides them from members of vru_bi_reader; every other role (the pipeline's) sees every row.
alter table audit.loads enable row level security;
drop policy if exists no_ae_counts_for_bi on audit.loads;
create policy no_ae_counts_for_bi on audit.loads
    using (dataset <> 'ae.attendances' or not pg_has_role(current_user, 'vru_bi_reader', 'usage'))
    with check (true);
alter table audit.validation_results enable row level security;
drop policy if exists no_ae_counts_for_bi on audit.validation_results;
create policy no_ae_counts_for_bi on audit.validation_results
    using (dataset not like 'ae.%' or stage = 'marts'
           or not pg_has_role(current_user, 'vru_bi_reader', 'usage'))
    with check (true);
