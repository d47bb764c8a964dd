"""Symbolic derivation of the per-mode generating functions with sympy, (E5)-(E8).

Symbols: alpha, beta, lam (lambda), gamma, tau, z; x = alpha*lambda, g = gamma*tau where a reduced form helps.

(E5) A_lambda: per-mode map of (c, j, p) without the S source; (E6) S_lambda(z) = det(I - z A_lambda),
U_lambda(z) = [(I - z A)^{-1} (1,1,1)]_c, V_lambda(z) = [(I - z A)^{-1} e_c]_c; (E7) z = 1 forms; (E8) positivity of
S_lambda and monotonicity of U~ on z in [0, 1] under the mean-stability conditions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sympy as sp

alpha, beta, lam, gamma, tau, z = sp.symbols("alpha beta lambda gamma tau z", real=True)


def mode_matrix() -> sp.Matrix:
    """A_lambda of (E5), state order (c, j, p), written from the (E4) updates without the S term."""
    a = alpha * lam
    q = a**2 * (1 - gamma * tau)
    # p' = q c - 2 a beta j + beta^2 p; j' = beta j - a c + p'; c' = (1 - 2a) c + 2 beta j + p'
    p_row = sp.Matrix([[q, -2 * a * beta, beta**2]])
    j_row = sp.Matrix([[-a, beta, 0]]) + p_row
    c_row = sp.Matrix([[1 - 2 * a, 2 * beta, 0]]) + p_row
    return sp.Matrix.vstack(c_row, j_row, p_row)


def mode_denominator_expr() -> sp.Expr:
    """S_lambda(z) = det(I - z A_lambda), expanded (E6)."""
    return sp.expand((sp.eye(3) - z * mode_matrix()).det())


def _resolvent_column(vec: sp.Matrix) -> sp.Expr:
    M = sp.eye(3) - z * mode_matrix()
    return sp.simplify(M.adjugate()[0, :].dot(vec)) / mode_denominator_expr()


def u_mode_expr() -> sp.Expr:
    """U_lambda(z) = [(I - z A)^{-1} (1,1,1)]_c (E6); the numerator simplifies to 1 + beta z."""
    return sp.factor(sp.cancel(_resolvent_column(sp.Matrix([1, 1, 1]))))


def v_mode_expr() -> sp.Expr:
    """V_lambda(z) = [(I - z A)^{-1} e_c]_c (E6)."""
    return sp.factor(sp.cancel(_resolvent_column(sp.Matrix([1, 0, 0]))))


def at_z1() -> dict[str, sp.Expr]:
    """The z = 1 forms of (E7): S(1), D = S(1)/(alpha lambda), U(1), V(1)."""
    S1 = sp.factor(mode_denominator_expr().subs(z, 1))
    D = sp.expand(sp.cancel(S1 / (alpha * lam)))
    return {
        "S1": S1,
        "D": D,
        "U1": sp.simplify(u_mode_expr().subs(z, 1)),
        "V1": sp.simplify(v_mode_expr().subs(z, 1)),
    }


class PositivityCheck(NamedTuple):
    """checked: grid points satisfying (i)-(ii) of E8; min_S: smallest S_lambda(z); min_dU: smallest d/dz [z U(z)];
    violations: points with S <= 0 or dU < -tol."""

    checked: int
    min_S: float
    min_dU: float
    violations: int


def check_positivity(grid: int = 20, tol: float = 1e-12) -> PositivityCheck:
    """Check S_lambda(z) > 0 and d/dz [z U_lambda(z)] >= 0 for z in [0, 1] on a grid^4 of
    (beta in (-1, 1), x = alpha lambda in (0, 2(1+beta)), g = gamma tau in [-2, 2], z in [0, 1]),
    restricted to (i)-(ii) of (E8): mean stability and D > 0. Expressions from sympy, evaluated with numpy."""
    x, g = sp.symbols("x g", real=True)
    S = sp.expand(mode_denominator_expr().subs(lam, x / alpha).subs(tau, g / gamma))
    zU = z * (1 + beta * z) / S
    dzU = sp.diff(zU, z)
    fS = sp.lambdify((beta, x, g, z), S, "numpy")
    fd = sp.lambdify((beta, x, g, z), dzU, "numpy")
    frac = (np.arange(grid) + 0.5) / grid
    B = -1 + 2 * frac
    G = -2 + 4 * np.arange(grid) / (grid - 1)
    Zs = np.arange(grid) / (grid - 1)
    bb, ff, gg, zz = np.meshgrid(B, frac, G, Zs, indexing="ij")
    xx = ff * 2 * (1 + bb)
    D = 2 * (1 - bb**2) + xx * (gg * (1 + bb) - (1 - bb))
    keep = D > 0
    Sv = fS(bb[keep], xx[keep], gg[keep], zz[keep])
    dv = fd(bb[keep], xx[keep], gg[keep], zz[keep])
    bad = (Sv <= 0) | (dv < -tol)
    return PositivityCheck(int(keep.sum()), float(Sv.min()), float(dv.min()), int(bad.sum()))


def redlog_statements() -> list[str]:
    """Quantifier-elimination statements (Reduce/Redlog syntax) for the positivity claims of (E8)."""
    S = str(sp.expand(mode_denominator_expr().subs(lam, sp.Symbol("x") / alpha).subs(tau, sp.Symbol("g") / gamma)))
    S = S.replace("**", "^")
    cond = "-1 < beta and beta < 1 and 0 < x and x < 2*(1+beta) and 2*(1-beta^2) + x*(g*(1+beta) - (1-beta)) > 0"
    return [
        "load_package redlog; rlset ofsf;",
        f"phi1 := all({{beta, x, g, z}}, ({cond} and 0 <= z and z <= 1) impl ({S}) > 0);",
        "rlqe phi1;",
        f"phi2 := all({{beta, x, g}}, ({cond}) impl ({S.replace('z', '1')}) > 0);",
        "rlqe phi2;",
    ]
