"""Arguments a check's call changed in place, as the runner reported them (`_calls.
call_with_mutation_guard`), turned into feedback. A call that modifies its inputs (`x += 1` on an
argument) corrupts its caller's tensors: in a network, the activations or upstream gradients that
other layers still use.

One rule for function, module and gradient checks: such a call earns nothing unless the check
sets `allow_mutation` (`forfeits`), and the feedback names the argument either way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from graders.notebook._parts import join_names
from graders.notebook._session import CheckResult


def mutated_arguments(result: CheckResult | None, arguments: Iterable[str]) -> list[str]:
    """The check's own argument names the runner said the call changed, in argument order. The
    runner's report is untrusted text: only names the check really passed are kept."""
    if result is None:
        return []
    reported = set(result.mutated)
    return [name for name in arguments if name in reported]


def forfeits(mutated: Sequence[str], allow_mutation: bool) -> bool:
    """Whether a check earns nothing because its call changed an argument in place."""
    return bool(mutated) and not allow_mutation


def mutation_phrase(name: str, arguments: Sequence[str]) -> str:
    """Feedback naming what `name` changed: "linear_backward changed its argument x in place ..."."""
    if not arguments:
        return ""
    listed = join_names(arguments)
    noun = "argument" if len(arguments) == 1 else "arguments"
    first = arguments[0]
    return (
        f"{name} changed its {noun} {listed} in place ({first} += ..., {first}[...] = ... or "
        f"{first}.add_(...)), which corrupts the caller's tensors; compute on a copy instead "
        f"({first} = {first} + ... or {first}.clone())."
    )
