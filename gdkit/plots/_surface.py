"""`surface`: the objective as a 3-D surface, the way MATLAB's `surf(peaks)` draws it."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from gdkit.objectives import Objective
from gdkit.plots import _common as c


def surface(objective: Objective, n: int = 49) -> Figure:
    """A faceted 3-D surface of a 2-D objective over its bounds (n x n mesh, MATLAB's default
    view az = -37.5, el = 30), coloured by height (log colours when f spans decades), with the
    known minima marked.

    Example:
      >>> from gdkit import objectives, plots
      >>> fig = plots.surface(objectives.get("peaks"))
    """
    c.require_2d(objective, "surface")
    xlim, ylim = c.view_box(objective)
    X, Y, Z = c.evaluate(objective, xlim, ylim, n=n)
    fig = c.new_figure(7.2, 5.8)
    # computed_zorder=False: artists are drawn in zorder, not by depth, so the minima's stars
    # (drawn last, above the surface, with a stem down to it) are never hidden behind it.
    ax = fig.add_subplot(projection="3d", computed_zorder=False)
    zmin = np.nanmin(Z)
    if c.spans_decades(Z - zmin):
        gap = Z - zmin
        norm = LogNorm(*c.log_levels(gap)[[0, -1]], clip=True)
        colors = _cmap()(norm(np.maximum(gap, norm.vmin)))
    else:
        norm = Normalize(zmin, np.nanmax(Z))
        colors = _cmap()(norm(Z))
    ax.plot_surface(
        X,
        Y,
        Z,
        facecolors=colors,
        edgecolor="k",
        linewidth=0.25,
        rstride=1,
        cstride=1,
        shade=False,
        antialiased=True,
        zorder=1,
    )
    top = float(np.nanmax(Z))
    for m in objective.minima:
        if xlim[0] <= m.x[0] <= xlim[1] and ylim[0] <= m.x[1] <= ylim[1]:
            ax.plot([m.x[0]] * 2, [m.x[1]] * 2, [m.f, top], color="k", lw=0.8, zorder=9)
            ax.scatter(
                *m.x,
                m.f,
                marker="*",
                s=160,
                color="gold",
                edgecolor="k",
                depthshade=False,
                zorder=10,
            )
    ax.view_init(elev=30, azim=-37.5)
    xname, yname = c.axis_names(objective)
    ax.set(xlabel=xname, ylabel=yname, zlabel="f", xlim=xlim, ylim=ylim)
    title = f"{objective.name}"
    if objective.minima:
        title += "  (★ known minima)" if len(objective.minima) > 1 else "  (★ known minimum)"
    c.title(ax, title)
    mappable = _scalar_mappable(norm)
    label = "f − min f (log colours)" if isinstance(norm, LogNorm) else "f"
    fig.colorbar(mappable, ax=ax, shrink=0.6, pad=0.08, label=label)
    return fig


def _cmap():
    import matplotlib

    return matplotlib.colormaps["viridis"]


def _scalar_mappable(norm):
    from matplotlib.cm import ScalarMappable

    sm = ScalarMappable(norm=norm, cmap=_cmap())
    sm.set_array([])
    return sm
