"""Drawing a suite's trend: pass rate and cost per task over its recorded runs."""

from __future__ import annotations

from pathlib import Path

from tiergate.evals._results import HistoryRow


def plot_history(suite: str, rows: list[HistoryRow], path: Path) -> None:
    """A two-panel PNG: pass rate (%) and cost per task (USD) per run, oldest first."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    runs = list(range(1, len(rows) + 1))
    figure, (rate, cost) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    rate.plot(runs, [r.pass_rate * 100 for r in rows], marker="o")
    rate.set_ylabel("pass rate %")
    rate.set_ylim(0, 105)
    rate.set_title(f"suite {suite}")
    cost.plot(runs, [r.cost_per_task_usd for r in rows], marker="o", color="tab:orange")
    cost.set_ylabel("cost per task $")
    cost.set_xlabel("run")
    labels = [f"{i}\n{r.agent_version[:10]}" for i, r in zip(runs, rows, strict=True)]
    cost.set_xticks(runs, labels, fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
