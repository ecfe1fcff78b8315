"""The ledger: each slot's utility per provider, and the per-slot, per-provider records of an
episode (LEDGER_FIELDS) that metrics and tests read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aigcsched.envs.datacenter.arrivals import Arrived
    from aigcsched.envs.datacenter.energy import Energy
    from aigcsched.envs.datacenter.service import Served

# What the env records per slot and provider in `ledger` (arrays of shape (slots, K)).
LEDGER_FIELDS = (
    "utility",  # USD: revenue - penalty - energy_cost - degradation - fees_paid + fees_received
    "revenue",  # USD, for this provider's customers' jobs served anywhere
    "penalty",  # USD, deadline penalties of this provider's customers' jobs
    "energy_cost",  # USD, energy bought by this data center
    "degradation",  # USD, battery wear
    "fees_paid",
    "fees_received",
    "arrivals",  # jobs arriving at this provider
    "handed_out",  # of those, handed to another provider
    "served",  # this provider's customers' jobs finished (anywhere)
    "executed",  # jobs run on this data center's GPUs
    "violations",  # this provider's customers' jobs that missed their deadline
    "quality_sum",  # sum of quality over `served`
    "load_kwh",  # facility energy (IT x PUE)
    "bought_kwh",  # from the grid
    "renewable_kwh",  # on-site PV + wind produced
    "renewable_used_kwh",  # of it, used (directly or into the battery)
    "grid_renewable_kwh",  # renewable part of the energy bought (grid mix)
    "carbon_kg",  # of the energy bought
    "charge_kwh",  # into the battery (from the bus)
    "discharge_kwh",  # out of the battery (to the bus)
    "soc",  # battery state of charge (fraction of capacity) at the end of the slot
    "queue",  # jobs waiting at this data center at the end of the slot
    "price",  # USD/MWh in the slot
)


class Ledger:
    """One episode's records: a row of LEDGER_FIELDS x K numbers per slot."""

    def __init__(self, n_asps: int):
        self._k = n_asps
        self._rows: list[list[float]] = []
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None

    def record(
        self,
        arrived: Arrived,
        served: Served,
        penalty: list[float],
        violations: list[float],
        energy: Energy,
        queue: list[int],
        price: list[float],
    ) -> np.ndarray:
        """Book one slot; returns each provider's utility (K,)."""
        utility = [
            revenue - pen - cost - wear - paid + received
            for revenue, pen, cost, wear, paid, received in zip(
                served.revenue, penalty, energy.cost, energy.wear, arrived.fees_paid, arrived.fees_received,
                strict=True,
            )
        ]  # fmt: skip
        self._rows.append(
            [
                *utility, *served.revenue, *penalty, *energy.cost, *energy.wear, *arrived.fees_paid,
                *arrived.fees_received, *arrived.arrivals, *arrived.handed_out, *served.served, *served.executed,
                *violations, *served.quality_sum, *energy.load_kwh, *energy.bought_kwh, *energy.renewable_kwh,
                *energy.renewable_used_kwh, *energy.grid_renewable_kwh, *energy.carbon_kg, *energy.charge_kwh,
                *energy.discharge_kwh, *energy.soc, *queue, *price,
            ]
        )  # fmt: skip
        return np.array(utility)

    def arrays(self) -> dict[str, np.ndarray]:
        """The episode so far: {field: (slots, K) array} for each of LEDGER_FIELDS."""
        t = len(self._rows)
        if self._cache is None or self._cache[0] != t:
            rows = np.array(self._rows, dtype=np.float64).reshape(t, len(LEDGER_FIELDS), self._k)
            self._cache = (t, {name: rows[:, i] for i, name in enumerate(LEDGER_FIELDS)})
        return self._cache[1]


class BatchLedger:
    """B episodes' records, for arrays over (B, K): the same rows as `Ledger`, kept in one (slot,
    field, B, K) array, so that booking a slot writes one block."""

    def __init__(self, n_envs: int, n_slots: int, n_asps: int):
        self._rows = np.zeros((n_slots, len(LEDGER_FIELDS), n_envs, n_asps))
        self._t = 0

    def record(
        self,
        arrived: Arrived,
        served: Served,
        penalty: np.ndarray,
        violations: np.ndarray,
        energy: Energy,
        queue: np.ndarray,
        price: np.ndarray,
    ) -> np.ndarray:
        """Book the next slot; returns each provider's utility (B, K), summed in `Ledger.record`'s order."""
        utility = served.revenue - penalty - energy.cost - energy.wear - arrived.fees_paid + arrived.fees_received
        fields = (
            utility, served.revenue, penalty, energy.cost, energy.wear, arrived.fees_paid, arrived.fees_received,
            arrived.arrivals, arrived.handed_out, served.served, served.executed, violations, served.quality_sum,
            energy.load_kwh, energy.bought_kwh, energy.renewable_kwh, energy.renewable_used_kwh,
            energy.grid_renewable_kwh, energy.carbon_kg, energy.charge_kwh, energy.discharge_kwh, energy.soc, queue,
            price,
        )  # fmt: skip
        np.stack(fields, out=self._rows[self._t], casting="same_kind")  # counts become floats, as in `Ledger`
        self._t += 1
        return utility

    def fork(self, index: int, n: int) -> BatchLedger:
        """n copies of episode `index`'s records so far (`DataCenterVectorEnv.fork`)."""
        out = BatchLedger(n, len(self._rows), self._rows.shape[-1])
        out._rows[:] = self._rows[:, :, index, None]
        out._t = self._t
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The episodes so far: {field: (B, slots, K) array} for each of LEDGER_FIELDS."""
        rows = self._rows[: self._t].transpose(1, 2, 0, 3)
        return dict(zip(LEDGER_FIELDS, rows, strict=True))
