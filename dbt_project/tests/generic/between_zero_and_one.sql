{#
    Fails for every row whose `column_name` is outside [0, 1]; NULL passes (a rate with no
    denominator is NULL by design).
#}
{% test between_zero_and_one(model, column_name) %}

select *
from {{ model }}
where {{ column_name }} < 0 or {{ column_name }} > 1

{% endtest %}
