import sys, glob, torch, numpy as np
from PIL import Image, ImageFilter
sys.path.insert(0,'src')
from odic.observers import create_observer
from odic.losses import human_distortion, machine_distortion
torch.set_num_threads(2)
obs = create_observer('efficientnet_lite0')
files = sorted(glob.glob('../shared/data/train/*.webp'))[::50][:24]
x = torch.stack([torch.from_numpy(np.array(Image.open(f).convert('RGB'))).permute(2,0,1).float()/255 for f in files])[:, :, 64:192, 64:192]
ratios=[]
for kind in ['blur1','blur2','noise','q']:
    if kind.startswith('blur'):
        s = 1.0 if kind=='blur1' else 2.0
        import torchvision.transforms.functional as TF
        xh = TF.gaussian_blur(x, 9, s)
    elif kind=='noise': xh = (x + 0.05*torch.randn_like(x)).clamp(0,1)
    else: xh = (x*8).round()/8
    with torch.no_grad():
        dh = human_distortion(x, xh); dm = machine_distortion(obs, x, xh)
    r = (dh/dm); ratios.append(r)
    print(kind, dh.mean().item(), dm.mean().item(), r.median().item())
print('median ratio', torch.cat(ratios).median().item())
