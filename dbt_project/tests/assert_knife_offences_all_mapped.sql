-- Fails when a published knife offence is not in the knife_offence_groups seed. Each failing row
-- names the offence text, and the run log lists them: add each to seeds/knife_offence_groups.csv
-- with its offence group.
{%- if execute %}
    {%- set staged = adapter.get_relation(
        database=ref('stg_home_office__knife_offences').database,
        schema=ref('stg_home_office__knife_offences').schema,
        identifier=ref('stg_home_office__knife_offences').identifier,
    ) %}
    {%- if staged is not none %}
        {%- set unmapped = run_query(
            "select distinct offence from " ~ staged ~ " where offence_group is null order by 1"
        ) %}
        {%- if unmapped.rows | length > 0 %}
            {%- do log(
                "Knife offences missing from seeds/knife_offence_groups.csv (add each with its "
                ~ "offence group): " ~ (unmapped.columns[0].values() | map('tojson') | join(', ')),
                info=True,
            ) %}
        {%- endif %}
    {%- endif %}
{%- endif %}

with

knife_offences as (

    select * from {{ ref('stg_home_office__knife_offences') }}

),

unmapped as (

    select
        offence,
        'add "' || offence || '" to seeds/knife_offence_groups.csv' as fix,
        count(*) as cells,
        min(financial_year) as first_financial_year,
        max(financial_year) as last_financial_year

    from knife_offences
    where offence_group is null
    group by offence

)

select * from unmapped
