"""Contract tests of the four optimizers (DESIGN.md §7 items 1-3, 9, 15, 16; DESIGN.md §9 validation)."""

from __future__ import annotations

import pytest
import torch
from ls_recipes import IDS, RECIPES, batches, flat_params, mlp, train
from torch import nn


def test_seed_imports():
    """DESIGN.md §2 / 7.1: the seed's import paths."""
    from line_search.sls import SLS, AdamSLS, KenSLS, SaLSA, SaLSa  # noqa: F401
    from line_search.sls.adam_sls import KenSLS as K1
    from line_search.sls.ken_sls import KenSLS as K2

    assert K1 is K2 is KenSLS and SaLSA is SaLSa


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_param_group_forms(r):
    """DESIGN.md §7.1: seed list of iterables -> 1 group; plain and dict groups work; mixed -> TypeError;
    c -> ValueError."""
    model = mlp()
    n = len(list(model.parameters()))
    opt = r.cls([model.parameters()])
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == n, "DESIGN.md §7.1 seed form"
    assert len(r.cls(model.parameters()).param_groups) == 1
    groups = [{"params": list(model[1].parameters()), "weight_decay": 0.1}, {"params": list(model[4].parameters())}]
    opt = r.cls(groups)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    with pytest.raises(TypeError):
        r.cls([next(model.parameters()), model.parameters()])
    with pytest.raises(ValueError, match="c"):
        r.cls([{"params": list(model.parameters()), "c": 0.3}])


BAD_VALUES = [
    ("c", 0.0),
    ("c", 1.0),
    ("shrink", 1.0),
    ("shrink", 0.0),
    ("grow", 0.9),
    ("max_trials", 0),
    ("beta_s", 1.0),
    ("beta_s", -0.1),
    ("eta_min", 0.0),
    ("eta_min", 10.0),
    ("weight_decay", -1.0),
]


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
@pytest.mark.parametrize("name,value", BAD_VALUES, ids=[f"{n}={v}" for n, v in BAD_VALUES])
def test_invalid_hyperparameter_names_argument(r, name, value):
    """DESIGN.md §9: a ValueError naming the argument."""
    with pytest.raises(ValueError, match=name):
        r.cls(mlp().parameters(), **{name: value})


@pytest.mark.parametrize("r", [x for x in RECIPES if x.moments], ids=[x.name for x in RECIPES if x.moments])
@pytest.mark.parametrize("kw", [{"eps": 0.0}, {"betas": (1.0, 0.9)}], ids=["eps", "betas"])
def test_invalid_adam_knobs(r, kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        r.cls(mlp().parameters(), **kw)


def test_alias_twice_is_type_error():
    """Issue decision: one knob under two names is a TypeError; aliases alone work."""
    from line_search.sls import SLS, AdamSLS, KenSLS, SaLSa

    params = list(mlp().parameters())
    with pytest.raises(TypeError):
        SLS(params, shrink=0.5, beta_b=0.5)
    with pytest.raises(TypeError):
        KenSLS(params, betas=(0.9, 0.99), momentum=0.8)
    with pytest.raises(TypeError):
        SaLSa(params, beta_s=0.5, momentum=(0.9, 0.999, 0.9))
    assert AdamSLS(params, beta_b=0.5).shrink == 0.5
    opt = SaLSa(params, momentum=(0.8, 0.99, 0.5))
    assert opt.beta_s == 0.5 and opt.param_groups[0]["betas"] == (0.8, 0.99)
    assert SLS(params, gamma=2.0, n_batches_per_epoch=100).grow == pytest.approx(2 ** (1 / 100))


def test_class_defaults_design_3_2():
    """DESIGN.md §3.2 table: c, init_step_size, grow, shrink, max_trials, beta_s, eta_min, speed_up."""
    from line_search.sls import SLS, AdamSLS, KenSLS, SaLSa

    p = list(mlp().parameters())
    table = {
        SLS: (0.1, 1.0, 2 ** (1 / 500), 0.9, 100, 0.0, 1e-6, False),
        AdamSLS: (0.1, 0.1, 2 ** (1 / 500), 0.9, 200, 0.0, 1e-8, False),
        KenSLS: (0.5, 0.1, 1 / 0.999, 0.9, 100, 0.99, 1e-8, False),
        SaLSa: (0.5, 1.0, 1.1, 0.8, 100, 0.9, 1e-8, True),
    }
    for cls, want in table.items():
        o = cls(p)
        got = (o.c, o.init_step_size, o.grow, o.shrink, o.max_trials, o.beta_s, o.eta_min, o.speed_up)
        assert got == pytest.approx(want), f"DESIGN.md §3.2 defaults of {cls.__name__}: {got} != {want}"
    assert AdamSLS(p, smooth=True).beta_s == 0.99 and KenSLS(p, smooth=False).beta_s == 0.0


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_seed_loop_digits(r, digits):
    """DESIGN.md §7.2: returned loss == closure at w0 (bitwise); mean loss of steps 41-50 < 0.6x that of steps 1-10."""
    x, y = digits
    model = mlp()
    opt = r.cls([model.parameters()])
    crit = nn.CrossEntropyLoss()
    losses, checked = [], 0
    for bx, by in batches(x, y, 50):
        with torch.no_grad():
            ref = crit(model(bx), by)
        opt.zero_grad()
        loss = opt.step(closure=lambda bx=bx, by=by: crit(model(bx), by))
        assert torch.equal(loss, ref), f"DESIGN.md §7.2: returned loss {loss.item()} != closure at w0 {ref.item()}"
        checked += 1
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[40:]) / 10
    assert checked == 50
    assert last < 0.6 * first, f"{r.name} steps 41-50 loss {last:.4f} not < 0.6 x steps 1-10 {first:.4f}"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
@pytest.mark.parametrize("spelling", ["backward", "backwards"])
def test_closure_contract(r, spelling, digits):
    """DESIGN.md §7.3: one backward=True call per step; trials run with grad disabled; `backwards=` accepted."""
    x, y = digits
    model = mlp()
    opt = r.cls(model.parameters())
    crit = nn.CrossEntropyLoss()
    calls = []

    def body(flag, bx, by):
        calls.append((flag, torch.is_grad_enabled()))
        if flag:
            opt.zero_grad()
            loss = crit(model(bx), by)
            loss.backward()
            return loss
        return crit(model(bx), by)

    def make(bx, by):
        if spelling == "backward":
            return lambda backward=True: body(backward, bx, by)
        return lambda backwards=True: body(backwards, bx, by)

    for bx, by in batches(x, y, 5):
        calls.clear()
        opt.step(make(bx, by))
        assert [c for c in calls if c[0]] == [(True, True)], "DESIGN.md §7.3: exactly one backward=True call per step"
        trials = [c for c in calls if not c[0]]
        assert len(trials) == opt.diagnostics["trials"]
        assert all(grad is False for _, grad in trials), "DESIGN.md §7.3: trials must run under torch.no_grad()"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_closure_errors(r):
    """DESIGN.md §7.3: no closure -> RuntimeError; a 2-element loss -> ValueError."""
    model = mlp()
    opt = r.cls(model.parameters())
    with pytest.raises(RuntimeError):
        opt.step()
    with pytest.raises(ValueError):
        opt.step(lambda: model(torch.randn(2, 64)).sum(1)[:2])


def _sparse_model():
    torch.manual_seed(0)
    return nn.Embedding(10, 3, sparse=True)


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_sparse_grad_runtime_error(r):
    emb = _sparse_model()
    opt = r.cls(emb.parameters())
    with pytest.raises(RuntimeError, match="^Armijo line search optimizers do not support sparse gradients$"):
        opt.step(lambda: emb(torch.tensor([1, 2])).sum())


def test_salsa_without_line_search_is_adam(digits):
    """DESIGN.md §7.9: SaLSa(init_step_size=1e-3, grow=1, line_search=False) == Adam(1e-3); with wd 0.01 == AdamW."""
    from line_search.sls import SaLSa

    x, y = digits
    for wd, ref_cls in ((0.0, torch.optim.Adam), (0.01, torch.optim.AdamW)):
        a, b = mlp(), mlp()
        ours = SaLSa(a.parameters(), init_step_size=1e-3, grow=1.0, line_search=False, weight_decay=wd)
        ref = ref_cls(b.parameters(), lr=1e-3, weight_decay=wd)
        train(ours, a, x, y, 20)
        train(ref, b, x, y, 20)
        pa, pb = flat_params(a), flat_params(b)
        assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-7), f"(wd={wd}): max diff {(pa - pb).abs().max()}"
        assert ours.diagnostics["n_forwards"] == 20


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_group_lr_mirrors_eta(r, digits):
    """DESIGN.md §7.15: group['lr'] == eta in all groups after each step;
    writing lr = x gives next eta_cand = x*grow."""
    x, y = digits
    model = mlp()
    groups = [{"params": list(model[1].parameters())}, {"params": [p for m in model[2:] for p in m.parameters()]}]
    opt = r.cls(groups)
    for i, _ in enumerate(range(3)):
        train(opt, model, x, y, 1, skip=i)
        assert all(g["lr"] == opt.diagnostics["eta"] for g in opt.param_groups), "DESIGN.md §7.15"
    for g in opt.param_groups:
        g["lr"] = 0.0123
    train(opt, model, x, y, 1, skip=3)
    assert opt.diagnostics["eta_cand"] == pytest.approx(0.0123 * opt.grow, rel=1e-15), "DESIGN.md §7.15"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_memory_footprint(r, digits):
    """DESIGN.md §7.16: state bytes == Adam's exp_avg + exp_avg_sq; work bytes <= 1x params; SLS 0/0."""
    x, y = digits
    model = mlp()
    opt = r.cls(model.parameters())
    train(opt, model, x, y, 3)
    mem = opt.memory_footprint()
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if not r.moments:
        assert mem == {"state_bytes": 0, "work_bytes": 0}, f"DESIGN.md §7.16: SLS {mem}"
        return
    ref_model = mlp()
    adam = torch.optim.Adam(ref_model.parameters(), lr=1e-3)
    train(adam, ref_model, x, y, 1)
    adam_bytes = sum(
        st[k].numel() * st[k].element_size() for st in adam.state.values() for k in ("exp_avg", "exp_avg_sq")
    )
    assert mem["state_bytes"] == adam_bytes, f"DESIGN.md §7.16: {mem['state_bytes']} != Adam {adam_bytes}"
    assert 0 < mem["work_bytes"] <= param_bytes, f"DESIGN.md §7.16: work {mem['work_bytes']} > params {param_bytes}"


def test_class_directions_and_state_defaults():
    """DESIGN.md §3.2: tested direction / step taken, Adam moments, eta_max, betas, eps, weight_decay per class."""
    from line_search.sls import SLS, AdamSLS, KenSLS, SaLSa

    p = list(mlp().parameters())
    table = {
        SLS: ("sgd", "trial", False, 1),
        AdamSLS: ("precond", "momentum", True, 1),
        KenSLS: ("momentum", "trial", True, 1),
        SaLSa: ("precond", "momentum", True, 1),
    }
    for cls, want in table.items():
        o = cls(p)
        assert (o.search_direction, o.step_direction, o.moments, o.reset_option) == want, cls.__name__
        assert o.eta_max is None and o.line_search is True and o.param_groups[0]["weight_decay"] == 0.0
        if o.moments:
            assert o.param_groups[0]["betas"] == (0.9, 0.999) and o.param_groups[0]["eps"] == 1e-8
        else:
            assert "betas" not in o.param_groups[0] and "eps" not in o.param_groups[0]
    assert SaLSa(p, use_mv=True).search_direction == "momentum"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_every_keyword_reaches_the_optimizer(r):
    """Each constructor keyword arrives in the settings (or the group) unchanged, for every class."""
    kw = dict(c=0.3, init_step_size=0.05, grow=1.05, shrink=0.6, max_trials=7, beta_s=0.4, eta_min=1e-5, eta_max=0.5,
              weight_decay=0.01, speed_up=True, line_search=False, step_direction="trial", min_slope=1e-9,
              accept_ties=False, nan_policy="skip", replay_rng=False, sync_losses=False)  # fmt: skip
    if r.moments:
        kw.update(betas=(0.8, 0.99), eps=1e-6, step_direction="momentum")
    if r.cls.__name__ in ("SLS", "AdamSLS"):
        kw["reset_option"] = 2
    o = r.cls(mlp().parameters(), **kw)
    settings = o.settings()
    for key, value in kw.items():
        if key in ("weight_decay", "betas", "eps"):
            assert o.param_groups[0][key] == value, key
        else:
            assert settings[key] == value, key


@pytest.mark.parametrize(
    "cls_name,kw,names",
    [
        ("SLS", {"shrink": 0.5, "beta_b": 0.5}, ("shrink", "beta_b")),
        ("AdamSLS", {"shrink": 0.5, "beta_b": 0.5}, ("shrink", "beta_b")),
        ("KenSLS", {"shrink": 0.5, "beta_b": 0.5}, ("shrink", "beta_b")),
        ("SaLSa", {"shrink": 0.5, "beta_b": 0.5}, ("shrink", "beta_b")),
        ("AdamSLS", {"betas": (0.9, 0.99), "beta": 0.9}, ("betas", "momentum")),
        ("SLS", {"grow": 1.1, "gamma": 2.0}, ("grow", "gamma^(1/n_batches_per_epoch)")),
        ("AdamSLS", {"grow": 1.1, "n_batches_per_epoch": 10}, ("grow", "gamma^(1/n_batches_per_epoch)")),
        ("SaLSa", {"betas": (0.9, 0.99), "momentum": (0.9, 0.99, 0.9)}, ("momentum", "betas")),
    ],
)
def test_alias_twice_names_both(cls_name, kw, names):
    """One knob under two names: the TypeError names both spellings."""
    import line_search.sls as sls

    with pytest.raises(TypeError) as exc:
        getattr(sls, cls_name)(mlp().parameters(), **kw)
    assert str(exc.value).startswith("got both ") and str(exc.value).endswith("; pass one"), str(exc.value)
    assert all((n if "^" in n else f"'{n}'") in str(exc.value) for n in names), str(exc.value)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"c": 1.5}, "invalid c: 1.5 (must be in (0, 1))"),
        ({"init_step_size": 0.0}, "invalid init_step_size: 0.0 (must be > 0)"),
        ({"grow": 0.5}, "invalid grow: 0.5 (must be >= 1)"),
        ({"shrink": 1.0}, "invalid shrink: 1.0 (must be in (0, 1))"),
        ({"max_trials": 0}, "invalid max_trials: 0 (must be an int >= 1)"),
        ({"beta_s": 1.0}, "invalid beta_s: 1.0 (must be in [0, 1))"),
        ({"eta_min": 2.0}, "invalid eta_min: 2.0 (must be in (0, init_step_size])"),
        ({"eta_max": 1e-9}, "invalid eta_max: 1e-09 (must be >= eta_min or None)"),
        ({"nan_policy": "ignore"}, 'invalid nan_policy: \'ignore\' (must be "raise" or "skip")'),
        ({"step_direction": "up"}, "invalid step_direction: 'up' (must be trial or momentum)"),
        ({"reset_option": 5}, "invalid reset_option: 5 (must be 0, 1 or 2)"),
        ({"min_slope": -1.0}, "invalid min_slope: -1.0 (must be >= 0)"),
        ({"weight_decay": -0.1}, "invalid weight_decay: -0.1 (must be >= 0)"),
        ({"eps": 0.0}, "invalid eps: 0.0 (must be > 0)"),
        ({"betas": (0.9, 1.0)}, "invalid betas: (0.9, 1.0) (must be two values in [0, 1))"),
    ],
)
def test_invalid_settings_messages(kw, message):
    """DESIGN.md §9: the ValueError names the argument, the value and the allowed range."""
    from line_search.sls import AdamSLS

    with pytest.raises(ValueError) as exc:
        AdamSLS(mlp().parameters(), **kw)
    assert str(exc.value) == message


def test_boundary_values_are_accepted():
    from line_search.sls import SLS, AdamSLS

    p = list(mlp().parameters())
    o = AdamSLS(p, betas=(0.0, 0.0), beta_s=0.0, min_slope=0.0, weight_decay=0.0, grow=1.0, eta_min=0.1)
    assert o.param_groups[0]["betas"] == (0.0, 0.0) and o.eta_min == o.init_step_size == 0.1
    assert SLS(p, eta_max=1e-6).eta_max == 1e-6  # eta_max == eta_min is allowed


def test_single_reference_aliases():
    """gamma alone (n_batches_per_epoch 500), n_batches_per_epoch alone (gamma 2), momentum or beta alone."""
    from line_search.sls import SLS, AdamSLS, KenSLS

    p = list(mlp().parameters())
    assert SLS(p, gamma=3.0).grow == pytest.approx(3.0 ** (1 / 500), rel=1e-15)
    assert SLS(p, n_batches_per_epoch=100).grow == pytest.approx(2.0 ** (1 / 100), rel=1e-15)
    assert AdamSLS(p, gamma=3.0, n_batches_per_epoch=100).grow == pytest.approx(3.0 ** (1 / 100), rel=1e-15)
    assert KenSLS(p, momentum=0.8).param_groups[0]["betas"] == (0.8, 0.999)
    assert KenSLS(p, beta=0.99).param_groups[0]["betas"] == (0.9, 0.99)


@pytest.mark.parametrize(
    "params,error,message",
    [
        ("tensor", TypeError, "params must be an iterable of tensors, dicts or iterables, not a single tensor"),
        ("empty", ValueError, "optimizer got an empty parameter list"),
        ("number", TypeError, "params entries must be tensors, dicts or iterables of tensors, got int"),
        ("string", TypeError, "params entries must be tensors, dicts or iterables of tensors, got str"),
        (
            "mixed",
            TypeError,
            "params mixes forms ['dict', 'tensor']; pass tensors, group dicts or iterables, not a mix",
        ),
        ("bad iterable", TypeError, "each iterable in params must yield tensors"),
    ],
)
def test_param_forms_messages(params, error, message):
    from line_search.sls import SLS

    t = torch.zeros(2, requires_grad=True)
    value = {"tensor": t, "empty": [], "number": [1], "string": ["ab"], "mixed": [t, {"params": [t]}],
             "bad iterable": [[t, 3]]}[params]  # fmt: skip
    with pytest.raises(error) as exc:
        SLS(value)
    assert str(exc.value) == message


def test_three_forms_in_one_list_are_mixed():
    from line_search.sls import SLS

    t = torch.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match=r"\['dict', 'iterable', 'tensor'\]"):
        SLS([t, {"params": [t]}, [t]])
    assert len(SLS([[t], (u for u in [torch.zeros(1, requires_grad=True)])]).param_groups) == 2


@pytest.mark.parametrize("kind", ["DTensor", "FlatParameter", "_is_sharded"])
def test_sharded_parameters_are_refused(kind):
    """DESIGN.md §3.3: one Armijo search needs whole gradients, so FSDP/DTensor parameters are refused."""
    from line_search.sls import SLS

    if kind == "_is_sharded":
        p = torch.nn.Parameter(torch.zeros(2))
        p._is_sharded = True
    else:
        p = torch.zeros(2).as_subclass(type(kind, (torch.Tensor,), {})).requires_grad_()
    with pytest.raises(NotImplementedError) as exc:
        SLS([p])
    assert str(exc.value).startswith("sharded parameters (FSDP/DTensor) are not supported: one Armijo search")
    assert str(exc.value).endswith("wrap the model in DistributedDataParallel instead")
    opt = SLS([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(NotImplementedError):
        opt.add_param_group({"params": [p]})


def test_base_class_direction_checks():
    """The base's own arguments: unknown tested direction, momentum steps without Adam moments, edge values."""
    from line_search.sls import SLS, ArmijoLineSearch

    p = list(mlp().parameters())
    base = dict(c=0.1, init_step_size=1.0, grow=1.0, shrink=0.5, max_trials=1, beta_s=0.0, eta_min=1e-3)
    with pytest.raises(ValueError) as exc:
        ArmijoLineSearch(p, search_direction="up", **base)
    assert str(exc.value) == "invalid search_direction: 'up' (must be sgd, precond or momentum)"
    need = "step_direction='momentum' and preconditioned directions need Adam moments"
    for kw in ({"search_direction": "precond"}, {"step_direction": "momentum"}):
        with pytest.raises(ValueError) as exc:
            ArmijoLineSearch(p, moments=False, **kw, **base)
        assert str(exc.value) == need
    assert ArmijoLineSearch(p, **base).max_trials == 1
    assert SLS(p, reset_option=0).reset_option == 0
