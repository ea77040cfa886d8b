# Compares tricorder's engine (promql_diff_cli) with a running Prometheus on the generated
# queries: argv[1] data directory, argv[2] the CLI, argv[3] Prometheus's base URL.
import sys
D=sys.argv[1]; CLI=sys.argv[2]; URL=sys.argv[3]
import json, subprocess, urllib.request, urllib.parse, math, sys
qs=[l.rstrip('\n').split('\t') for l in open(D+'/queries.tsv')]
ours=[json.loads(l) for l in subprocess.run([CLI,D+'/data.tsv',D+'/queries.tsv'],capture_output=True,text=True).stdout.splitlines()]
assert len(ours)==len(qs), (len(ours),len(qs))
def f(v):
    return float(v.replace('+Inf','inf').replace('-Inf','-inf')) if isinstance(v,str) else v
def eq(a,b):
    a=f(a); b=f(b)
    if math.isnan(a) and math.isnan(b): return True
    if a==b: return True
    return abs(a-b) <= 1e-6*max(abs(a),abs(b))
def prom(q):
    if q[0]=='instant':
        u=URL+'/api/v1/query?'+urllib.parse.urlencode({'query':q[2],'time':int(q[1])/1000})
    else:
        u=URL+'/api/v1/query_range?'+urllib.parse.urlencode({'query':q[4],'start':int(q[1])/1000,'end':int(q[2])/1000,'step':int(q[3])/1000})
    try:
        return json.load(urllib.request.urlopen(u))
    except urllib.error.HTTPError as e:
        return json.load(e)
ok=bad=0
for q,o in zip(qs,ours):
    p=prom(q)
    msg=None
    if p['status']!=o['status']:
        msg='status prom=%s ours=%s %s'%(p['status'],o['status'],p.get('error') or o.get('error'))
    elif p['status']=='success':
        d=p['data']; rt=d['resultType']
        if rt=='scalar':
            if 'scalar' not in o or not eq(d['result'][1],o['scalar']): msg='scalar %s vs %s'%(d['result'],o.get('scalar'))
        else:
            pm={}
            for s in d['result']:
                key=json.dumps(s['metric'],sort_keys=True)
                vals=s['values'] if 'values' in s else [s['value']]
                pm[key]=vals
            om={}
            for s in o['result']:
                om[json.dumps(s['metric'],sort_keys=True)]=s['values']
            if set(pm)!=set(om):
                msg='series differ: only prom %s only ours %s'%(list(set(pm)-set(om))[:2], list(set(om)-set(pm))[:2])
            else:
                for k in pm:
                    a=pm[k]; b=om[k]
                    if rt=='vector':
                        if not eq(a[0][1],b[0][1]): msg='%s: %s vs %s'%(k,a[0][1],b[0][1]); break
                    else:
                        if len(a)!=len(b) or any(abs(x[0]-y[0])>1e-6 or not eq(x[1],y[1]) for x,y in zip(a,b)):
                            diffs=[(x,y) for x,y in zip(a,b) if abs(x[0]-y[0])>1e-6 or not eq(x[1],y[1])][:2]
                            msg='%s: n %d vs %d %s'%(k,len(a),len(b),diffs); break
    if msg:
        bad+=1
        print('DIFF', '\t'.join(q), '\n   ', msg[:400])
    else: ok+=1
print('same %d differ %d of %d'%(ok,bad,ok+bad))
