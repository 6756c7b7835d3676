"""The bundled sample and the stand-in servers: demo and test code, outside the production package.

`vru run --sample` (`make run`) and the tests serve it on 127.0.0.1: real data.police.uk stop and
search files (`data/police/`), synthetic editions of the knife crime and HES tables
(`data/knife_crime/`, `data/hes/`, in the publishers' layouts), and a deterministic generator of
synthetic A&E extracts (`istv`). The production package `vru` never imports this one.
"""
