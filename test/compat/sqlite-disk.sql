pragma cache_size=20; pragma temp_store=file;
create table t(id integer primary key, k text, v blob);
with recursive c(x) as (select 1 union all select x+1 from c where x<8000)
insert into t(k, v) select printf('%08x-%d', (x*2654435761) % 4294967296, x), zeroblob(40) from c;
select count(*), sum(length(k)), max(id) from t;
select k from t order by k limit 3;
select k, length(v) from t order by k desc, id limit 2 offset 1000;
create index tk on t(k);
select count(*) from (select k from t order by substr(k, 5) || k);
select k from t where k > '80000000' order by k limit 2;
delete from t where id % 3 = 0;
vacuum;
select count(*), min(k), max(k) from t;
pragma integrity_check;
