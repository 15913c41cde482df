import numpy as np
LEVELS = np.linspace(0, 1, 257)
def mode_frac(real):
    out = np.empty(real.shape[1])
    for g in range(real.shape[1]):
        out[g] = np.unique(np.round(real[:, g], 5), return_counts=True)[1].max() / len(real)
    return out
class QCal:
    adds_noise = False
    def __init__(self, pooled, groups): self.pooled, self.groups = pooled, groups
    @staticmethod
    def fitq(gen, real, min_mode):
        gq = np.quantile(gen, LEVELS, axis=0); rq = np.quantile(real, LEVELS, axis=0)
        gq = np.maximum.accumulate(gq + LEVELS[:, None] * 1e-6, axis=0)
        sel = np.arange(gen.shape[1]) if min_mode <= 0 else np.flatnonzero(mode_frac(real) >= min_mode)
        return gq, rq, sel
    @classmethod
    def fit(cls, gen, real, ggrp=None, rgrp=None, min_mode=0.0):
        pooled = cls.fitq(gen, real, min_mode); groups = {}
        if ggrp is not None:
            for c in np.unique(rgrp.reshape(len(rgrp), -1), axis=0):
                a = (ggrp.reshape(len(ggrp), -1) == c).all(1); b = (rgrp.reshape(len(rgrp), -1) == c).all(1)
                if a.sum() >= 10 and b.sum() >= 10: groups[tuple(c)] = cls.fitq(gen[a], real[b], min_mode)
        return cls(pooled, groups)
    fill = None
    def mapq(self, z, gq, rq, sel):
        out = z.copy() if self.fill is None else np.full_like(z, np.nan)
        for g in sel: out[:, g] = np.interp(z[:, g], gq[:, g], rq[:, g])
        return out
    def apply(self, z, noise=None, groups=None):
        z = np.asarray(z, np.float32)
        out = self.mapq(z, *self.pooled)
        if self.groups and groups is not None:
            groups = np.asarray(groups).reshape(len(z), -1)
            for c, p in self.groups.items():
                m = (groups == np.array(c)).all(1)
                if m.any(): out[m] = self.mapq(z[m], *p)
        return out.astype(np.float32)
class Chain:
    adds_noise = True
    def __init__(self, a, b): self.a, self.b = a, b
    def apply(self, z, noise=None, groups=None): return self.b.apply(self.a.apply(z, noise, groups), None, groups)
class RawChain:
    """moments+noise for every gene, then point-mass genes replaced by the quantile map of the raw output."""
    adds_noise = True
    def __init__(self, a, q): self.a, self.q = a, q
    def apply(self, z, noise=None, groups=None):
        out = self.a.apply(z, noise, groups)
        self.q.fill = np.nan
        mapped = self.q.apply(z, None, groups)
        return np.where(np.isnan(mapped), out, mapped).astype(np.float32)
def _mode(real):
    vals, fr = np.empty(real.shape[1]), np.empty(real.shape[1])
    for g in range(real.shape[1]):
        u, c = np.unique(np.round(real[:, g], 5), return_counts=True); i = c.argmax(); vals[g], fr[g] = u[i], c[i] / len(real)
    return vals, fr
class Floor:
    """moments+noise, then for genes with a point mass (fraction f >= thr): the lowest f of the values -> the mass."""
    adds_noise = True
    def __init__(self, base, gen, real, ggrp, rgrp, thr):
        self.base = base
        def fitp(g, r):
            v, f = _mode(r); sel = np.flatnonzero(f >= thr)
            t = np.array([np.quantile(g[:, j], f[j]) for j in sel])
            return sel, v[sel], t
        self.pooled = fitp(gen, real); self.groups = {}
        if ggrp is not None:
            for c in np.unique(rgrp.reshape(len(rgrp), -1), axis=0):
                a = (ggrp.reshape(len(ggrp), -1) == c).all(1); b = (rgrp.reshape(len(rgrp), -1) == c).all(1)
                self.groups[tuple(c)] = fitp(gen[a], real[b])
    @staticmethod
    def put(x, sel, v, t):
        x[:, sel] = np.where(x[:, sel] <= t, v, x[:, sel])
    def apply(self, z, noise=None, groups=None):
        out = self.base.apply(z, noise, groups)
        if not self.groups or groups is None:
            self.put(out, *self.pooled); return out
        groups = np.asarray(groups).reshape(len(z), -1)
        for c, p in self.groups.items():
            m = (groups == np.array(c)).all(1)
            if m.any():
                sub = out[m]; self.put(sub, *p); out[m] = sub
        return out
