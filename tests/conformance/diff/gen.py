# Generates the differential test's data (OpenMetrics for promtool, TSV for tricorder) and
# queries into the directory given as argv[1]. Samples sit 7 ms after whole seconds and query
# times 500 ms after, so that no sample lies on a window edge (Prometheus 2.x closes windows on
# the left, 3.x does not) and windows start an hour after the first sample (2.x and 3.x
# extrapolate differently at a series' start).
import sys
D=sys.argv[1]
import random, json, itertools
random.seed(7)
T0=1700000000000; OFF=7; STEP=15000; N=481
series=[]
def add(name, labels, vals):
    series.append((name, labels, vals))
for job in ['api','web']:
    for inst in ['0','1','2']:
        for code in ['200','500']:
            v=0; vals=[]
            for i in range(N):
                v+=random.randint(0,20 if code=='200' else 3)
                if random.random()<0.005: v=random.randint(0,5)
                vals.append((i,float(v)))
            add('http_requests_total',{'job':job,'instance':inst,'code':code},vals)
for host in 'abcd':
    vals=[(i, round(40+10*random.random()+i*0.01,3)) for i in range(N)]
    add('cpu_temp',{'host':host},vals)
for x in ['1','2']:
    vals=[(i, float(i%17)) for i in range(N) if not (100<=i<140 and x=='1') and not (i>400 and x=='2')]
    add('gappy',{'x':x},vals)
les=['0.05','0.1','0.25','0.5','1','2.5','+Inf']
for job in ['api','web']:
    cum=[0.0]*len(les); s=0.0; c=0.0; bvals={le:[] for le in les}; svals=[]; cvals=[]
    for i in range(N):
        for _ in range(random.randint(0,10)):
            obs=random.expovariate(3)
            s+=obs; c+=1
            for k,le in enumerate(les):
                if obs<=float(le): cum[k]+=1
        for k,le in enumerate(les): bvals[le].append((i,cum[k]))
        svals.append((i,round(s,6))); cvals.append((i,c))
    for le in les: add('req_duration_seconds_bucket',{'job':job,'le':le},bvals[le])
    add('req_duration_seconds_sum',{'job':job},svals)
    add('req_duration_seconds_count',{'job':job},cvals)
def lstr(name,labels):
    return name+'{'+','.join('%s="%s"'%(k,v) for k,v in sorted(labels.items()))+'}'
with open(D+'/data.om','w') as om, open(D+'/data.tsv','w') as tsv:
    names=sorted(set(s[0] for s in series))
    for nm in names:
        om.write('# TYPE %s unknown\n'%nm)
        for name,labels,vals in series:
            if name!=nm: continue
            for i,v in vals:
                t=T0+OFF+i*STEP
                om.write('%s %s %.3f\n'%(lstr(name,labels),repr(v),t/1000))
                tsv.write('%s\t%d\t%r\n'%(lstr(name,labels),t,v))
    om.write('# EOF\n')
# queries
sel=['http_requests_total','http_requests_total{job="api"}','http_requests_total{code=~"5.."}','cpu_temp','gappy','{__name__=~"cpu_temp|gappy"}','http_requests_total{job!="api",code!~"2.*"}']
cnt=['http_requests_total','http_requests_total{job="web"}','req_duration_seconds_count']
rng=['1m','5m','10m','3m']
q=[]
q+=sel
for s in cnt:
    for r in rng:
        for f in ['rate','irate','increase','resets','changes','delta','idelta','deriv']:
            q.append('%s(%s[%s])'%(f,s,r))
for s in ['cpu_temp','gappy']:
    for r in ['2m','7m']:
        for f in ['avg_over_time','sum_over_time','min_over_time','max_over_time','count_over_time','stddev_over_time','stdvar_over_time','last_over_time','present_over_time','absent_over_time','changes','deriv','delta','idelta']:
            q.append('%s(%s[%s])'%(f,s,r))
        q.append('quantile_over_time(0.3, %s[%s])'%(s,r))
        q.append('predict_linear(%s[%s], 600)'%(s,r))
for ag in ['sum','avg','min','max','count','stddev','stdvar','group']:
    q.append('%s(rate(http_requests_total[5m]))'%ag)
    q.append('%s by (job) (rate(http_requests_total[5m]))'%ag)
    q.append('%s without (instance) (http_requests_total)'%ag)
    q.append('%s(cpu_temp) by (host)'%ag)
q+=['topk(3, rate(http_requests_total[5m]))','bottomk(2, cpu_temp)','topk by (job) (1, http_requests_total)',
    'quantile(0.9, cpu_temp)','quantile by (job) (0.5, rate(http_requests_total[5m]))','count_values("v", gappy)',
    'histogram_quantile(0.9, rate(req_duration_seconds_bucket[5m]))','histogram_quantile(0.5, sum by (le) (rate(req_duration_seconds_bucket[10m])))',
    'histogram_quantile(0.99, sum by (le, job) (increase(req_duration_seconds_bucket[3m])))',
    'rate(req_duration_seconds_sum[5m]) / rate(req_duration_seconds_count[5m])',
    'sum by (job) (rate(http_requests_total{code="500"}[5m])) / sum by (job) (rate(http_requests_total[5m]))',
    'http_requests_total / on(job, instance) group_left sum by (job, instance) (http_requests_total)',
    'sum by (job, instance) (http_requests_total) / on(job, instance) group_right http_requests_total',
    'http_requests_total > 1000','http_requests_total > bool 1000','cpu_temp < 45 or gappy','gappy and cpu_temp','cpu_temp unless on(host) cpu_temp{host="a"}',
    'http_requests_total{code="200"} - ignoring(code) http_requests_total{code="500"}',
    '-cpu_temp','cpu_temp * 2 + 1','2 ^ gappy','gappy % 5','cpu_temp atan2 gappy','abs(-cpu_temp)','ceil(cpu_temp)','floor(cpu_temp)','round(cpu_temp, 0.5)','sqrt(cpu_temp)','exp(gappy)','ln(cpu_temp)','log2(cpu_temp)','log10(cpu_temp)',
    'clamp(cpu_temp, 42, 48)','clamp_min(cpu_temp, 45)','clamp_max(cpu_temp, 45)','sgn(gappy - 8)','timestamp(cpu_temp)','timestamp(gappy)',
    'label_replace(cpu_temp, "h2", "x-$1", "host", "(.)")','label_join(http_requests_total, "ji", "-", "job", "instance")',
    'absent(nonexistent{a="b"})','absent(cpu_temp)','vector(1)','scalar(cpu_temp{host="a"})','scalar(cpu_temp)','time()','hour()','minute(timestamp(cpu_temp))','day_of_week()','month()','year()','days_in_month()','day_of_month()','day_of_year()',
    'sort(cpu_temp)','sort_desc(cpu_temp)',
    'max_over_time(rate(http_requests_total[1m])[10m:1m])','avg_over_time(cpu_temp[10m:30s])','rate(http_requests_total[5m:20s])','sum_over_time(gappy[10m:])',
    'cpu_temp offset 5m','rate(http_requests_total[5m] offset 10m)','cpu_temp offset -2m',
    'sum(rate(http_requests_total[5m])) by (code) > 5','count(cpu_temp > 45)','sum(gappy) + sum(cpu_temp)','pi() * 2','1 + 2 * 3','(1 > bool 0) + 1',
    'changes(cpu_temp[30m])','resets(http_requests_total[1h])','increase(http_requests_total[1h])',
    'sin(gappy)','cos(gappy)','tan(gappy)','asin(gappy/20)','acos(gappy/20)','atan(gappy)','sinh(gappy)','cosh(gappy)','tanh(gappy)','asinh(gappy)','acosh(gappy+1)','atanh(gappy/20)','deg(gappy)','rad(gappy)',
    'holt_winters(cpu_temp[10m], 0.5, 0.5)' if False else 'min(cpu_temp) by (host) - max(cpu_temp) by (host)',
    'irate(http_requests_total[30s])','rate(http_requests_total[30s])',
    'http_requests_total @ 1700003000','rate(http_requests_total[5m] @ 1700004000.5 offset 1m)','sum_over_time(cpu_temp[10m:1m] offset 3m)',
    'max_over_time(max_over_time(cpu_temp[3m:30s])[10m:1m])','min_over_time(rate(http_requests_total[2m])[15m:90s] offset 1m)',
    'avg_over_time(cpu_temp[5m] @ 1700004321)','count_over_time(gappy[20m:2m])',
    'label_replace(http_requests_total, "status", "${1}xx", "code", "(.).*")','label_replace(cpu_temp, "host", "", "host", "a")',
    'sum by (status) (label_replace(rate(http_requests_total[5m]), "status", "$1xx", "code", "(.)..") )',
    'http_requests_total{code="500"} / ignoring(code) group_left http_requests_total{code="200"}',
    'sum by (job) (http_requests_total) * on(job) group_right sum by (job, instance) (http_requests_total)',
    'http_requests_total * on(job, instance, code) group_left(host) label_replace(cpu_temp, "job", "api", "host", ".*") * 0 + 1' if False else 'http_requests_total and on(instance) (http_requests_total{job="web"} > 3000)',
    'http_requests_total unless on(job) http_requests_total{job="web"}','cpu_temp or on(host) gappy','gappy or vector(0)',
    'sum(gappy) or vector(0)','count(nonexistent) or vector(0)','vector(time()) - on() group_left timestamp(cpu_temp)' if False else 'time() - timestamp(cpu_temp)',
    'cpu_temp > on(host) group_left avg(cpu_temp)' if False else 'cpu_temp > scalar(avg(cpu_temp))','cpu_temp == bool 45','1 - cpu_temp / 100',
    'absent_over_time(gappy[5m])','absent_over_time(nonexistent{a="b"}[5m])','present_over_time(gappy[2m])',
    'stddev by (job) (http_requests_total)','stdvar(cpu_temp)','quantile(0.25, cpu_temp)','quantile(2, cpu_temp)','quantile(-1, cpu_temp)',
    'topk(2, cpu_temp) by (host)','bottomk(1, sum by (job) (http_requests_total))','count_values("code", http_requests_total > 1e9)',
    'count by (job) (count_values by (job) ("v", round(cpu_temp)))','group by (job) (http_requests_total)','sum without (job, instance, code) (http_requests_total)',
    'sort_desc(sum by (job) (rate(http_requests_total[5m])))','histogram_quantile(0.75, sum without (job) (rate(req_duration_seconds_bucket[5m])))',
    'histogram_quantile(1, rate(req_duration_seconds_bucket[5m]))','histogram_quantile(0, rate(req_duration_seconds_bucket[5m]))',
    'deriv(cpu_temp[10m:1m])','predict_linear(http_requests_total[10m], 3600)','resets(cpu_temp[1h])','changes(gappy[1h])',
    'rate(http_requests_total[1h:5m])','increase(http_requests_total[10m] offset -5m)','delta(cpu_temp[1h])','idelta(cpu_temp[5m] offset 30m)',
    'clamp(gappy, 10, 5)','round(cpu_temp)','round(cpu_temp, 10)','-(-gappy)','+gappy','gappy ^ 0.5 * 2 - 1 % 3','(cpu_temp + 1) / (cpu_temp - 40)',
    'cpu_temp / 0','-cpu_temp / 0','gappy / gappy','0 / 0 + vector(1)',
    ]
times=[T0+3600000, T0+2*3600000-123000, T0+600000, T0+7200000+240000, T0+1800000+500]
times=[t - t%1000 + 500 for t in times]
times=[t if t > T0+3700000 else t+3700000 for t in times]
with open(D+'/queries.tsv','w') as f:
    for qq in q:
        for t in times[:3]:
            f.write('instant\t%d\t%s\n'%(t,qq))
        f.write('range\t%d\t%d\t%d\t%s\n'%(T0+3700500,T0+6600500,60000,qq))
        f.write('range\t%d\t%d\t%d\t%s\n'%(T0+3605500,T0+7500000,37000,qq))
print(len(q),'queries', len(series),'series')
