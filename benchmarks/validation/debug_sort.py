import torch, json
from torch.profiler import profile, ProfilerActivity, record_function
from dsocr_trace.validate import opbench
d = json.load(open("benchmarks/validation/ops-h100.json"))["ops"]
key = [k for k, v in d.items() if v["op"].startswith("aten.sort") and v["inputs"][0]["shape"] == [6]][0]
dev = torch.device("cuda:0")
gen = torch.Generator(device=dev); gen.manual_seed(0)
t_direct = torch.randint(0, 64, (6,), device=dev)
base = opbench._prepare(d[key], dev, gen)
fn = opbench._runner(d[key], [base], dev)
for _ in range(3): torch.sort(t_direct); fn(0)
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for i in range(3):
        with record_function(f"direct{i}"): torch.sort(t_direct)
        with record_function(f"replay{i}"): fn(i)
    torch.cuda.synchronize()
for ev in prof.key_averages():
    if ev.key.startswith(("direct", "replay")): print(ev.key, ev.device_time_total, ev.cpu_time_total)
for e in prof.events():
    if e.device_type == torch.autograd.DeviceType.CUDA: print(e.name[:80], e.device_time)
