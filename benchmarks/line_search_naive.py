"""Naive reference of the optimizers (line_search/DESIGN.md §8, B4 baseline): algorithm (A1)-(A9), written plainly.

Identical accept decisions to line_search.sls, but: a deepcopy of all parameters every step, per-tensor Python loops,
P recomputed in every trial, the global RNG state saved, reseeded and restored around every closure call, and
`.item()` per tensor. Used as the B4 baseline of benchmarks/line_search_speed.py and as a test oracle.
"""

from __future__ import annotations

import copy
import math

import torch

from line_search.sls.armijo import (
    armijo_test,
    candidate_step_size,
    search_interval,
    should_search,
    smoothed_slope,
    speedup_emas,
    trial_step_size,
)


class NaiveArmijo:
    """Plain re-statement of ArmijoLineSearch for one param group (no state_dict, no DDP, no norm-layer handling)."""

    def __init__(self, params, *, c=0.5, init_step_size=1.0, grow=1.1, shrink=0.8, max_trials=100, beta_s=0.9,
                 eta_min=1e-8, eta_max=None, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, speed_up=True,
                 search_direction="precond", step_direction="momentum", min_slope=1e-12, seed=0):  # fmt: skip
        self.params = list(params)
        self.c, self.eta0, self.grow, self.shrink, self.max_trials = c, init_step_size, grow, shrink, max_trials
        self.beta_s, self.eta_min, self.eta_max, self.betas, self.eps = beta_s, eta_min, eta_max, betas, eps
        self.wd, self.speed_up, self.search, self.stepdir = weight_decay, speed_up, search_direction, step_direction
        self.min_slope = min_slope
        self.gen = torch.Generator().manual_seed(seed)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.eta, self.t, self.h, self.s = init_step_size, 0, 0.0, 0.0
        self.e_fast, self.e_slow, self.last_search, self.L = 1e-8, 1e-8, 0, 1.0
        self.decisions: list[tuple[int, int, bool]] = []  # (step, trials, accepted)
        self.n_forwards = 0

    def _call(self, closure, seed, backward):
        saved = torch.get_rng_state()
        torch.manual_seed(seed)
        try:
            if backward:
                with torch.enable_grad():
                    loss = closure()
                    loss.backward()
            else:
                with torch.no_grad():
                    loss = closure()
        finally:
            torch.set_rng_state(saved)
        return loss.detach()

    def _direction(self, kind):
        b1, b2 = self.betas
        out = []
        for p, m, v in zip(self.params, self.m, self.v):
            if kind == "sgd":
                out.append(p.grad.clone())
                continue
            P = 1.0 / ((v / (1 - b2**self.t)).sqrt() + self.eps)
            out.append(P * p.grad if kind == "precond" else P * (m / (1 - b1**self.t)))
        return out

    def _slope(self, d):
        return sum(torch.sum(p.grad * di, dtype=torch.float64).item() for p, di in zip(self.params, d))

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, closure):
        seed = int(torch.randint(0, 2**62, (1,), generator=self.gen))
        w0 = copy.deepcopy([p.detach() for p in self.params])  # every step (line_search/DESIGN.md §8)
        loss = self._call(closure, seed, True)
        f0 = loss.double().item()
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        eta_cand = candidate_step_size(self.eta, self.grow, self.eta0, self.eta_min, self.eta_max)
        self.n_forwards += 1
        if self.speed_up and not should_search(self.t, self.t - self.last_search, self.L):
            for p, d in zip(self.params, self._direction("momentum")):
                p.sub_(eta_cand * (d + self.wd * p))
            return loss
        d = self._direction(self.search)
        phi = self._slope(d)
        kind = self.search
        if self.search == "momentum" and not (phi > 0 and math.isfinite(phi)):
            kind = "precond"
            d = self._direction(kind)
            phi = self._slope(d)
        s_k = smoothed_slope(self.s, phi, self.beta_s)
        self.s = s_k
        trials, accepted, eta = 0, False, eta_cand
        if s_k > self.min_slope:
            for j in range(self.max_trials):
                eta = trial_step_size(eta_cand, self.shrink, j, self.eta_min)
                d = self._direction(kind)  # P recomputed in every trial
                for p, w, di in zip(self.params, w0, d):
                    p.copy_(w - eta * di)
                f_j = self._call(closure, seed, False).double().item()
                trials += 1
                res = armijo_test(f0, f_j, eta, s_k, self.h, self.c, self.beta_s)
                if res.accepted:
                    accepted, self.h = True, res.h
                    break
                if eta <= self.eta_min:
                    break
        step_d = self._direction("momentum") if self.stepdir == "momentum" else self._direction(kind)
        for p, w, di in zip(self.params, w0, step_d):
            p.copy_(w * (1 - eta * self.wd) - eta * di)
        self.eta = eta
        self.e_fast, self.e_slow = speedup_emas(self.e_fast, self.e_slow, eta)
        self.L = search_interval(self.e_fast, self.e_slow)
        self.last_search = self.t
        self.n_forwards += trials
        self.decisions.append((self.t, trials, accepted))
        return loss
