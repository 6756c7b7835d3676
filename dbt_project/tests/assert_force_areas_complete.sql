-- force_areas must list all 43 territorial forces of England and Wales, 39 in England and 4 in
-- Wales, with 20 VRU areas (18 from 2019, Cleveland and Humberside from 2022).
with

force_areas as (

    select * from {{ ref('force_areas') }}

),

summary as (

    select
        count(*) as forces,
        count(*) filter (where country = 'England') as english_forces,
        count(*) filter (where country = 'Wales') as welsh_forces,
        count(*) filter (where is_vru_area and vru_start_date = '2019-04-01') as vru_areas_2019,
        count(*) filter (where is_vru_area and vru_start_date = '2022-04-01') as vru_areas_2022,
        count(*) filter (where s60_relaxed_from = '2019-04-01') as s60_pilot_forces

    from force_areas

)

select * from summary
where
    forces <> 43
    or english_forces <> 39
    or welsh_forces <> 4
    or vru_areas_2019 <> 18
    or vru_areas_2022 <> 2
    or s60_pilot_forces <> 7
