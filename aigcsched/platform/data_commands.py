"""`aigcsched data download`: fetch the public traces the `datacenter` env can read."""

from __future__ import annotations

import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from aigcsched.envs.data import (
    DEFAULT_BASE_URL,
    PUBLIC_FILES,
    DataError,
    default_data_dir,
    load_carbon,
    load_prices,
    load_weather,
    load_workload,
)
from aigcsched.platform.config import ConfigError

app = typer.Typer(help="Public traces for the datacenter env: prices, carbon, weather, workload.", no_args_is_help=True)

KINDS = {
    "prices": ("electricity_prices/", load_prices),
    "carbon": ("carbon_intensity/", load_carbon),
    "weather": ("weather/", load_weather),
    "workload": ("workload/", load_workload),
}


def fetch(url: str, dest: Path, timeout: float = 60.0) -> int:
    """Download url to dest (via a temporary file, so a failed download leaves nothing); bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            size = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)
    return size


def _fail(message: str) -> None:
    """A download that did not work (not bad input, which is a ConfigError: exit 2)."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(1)


@app.command()
def download(
    dest: Annotated[
        Path | None,
        typer.Option(help="directory to fill [default: $AIGCSCHED_DATA_DIR or ~/.cache/aigcsched/data]"),
    ] = None,
    source_url: Annotated[
        str, typer.Option(help="base URL the files live under (a file:// URL for a local mirror)")
    ] = DEFAULT_BASE_URL,
    only: Annotated[
        list[str] | None,
        typer.Option(help=f"fetch only these kinds; repeat for several: {', '.join(KINDS)}"),
    ] = None,
    force: Annotated[bool, typer.Option(help="download again files already there")] = False,
) -> None:
    """Download the 2023 traces (electricity prices, carbon intensity with renewable share,
    Open-Meteo weather for CAISO, PJM, ERCOT and NYISO; Alibaba and Google cluster workload)
    from their public origin (HPE's green-dcc and dc-rl repositories), check that each one
    reads, and print where they are. The datacenter env reads the default directory when its
    data_dir is not set; use another one as `--set data_dir=DIR`."""
    unknown = sorted(set(only or []) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    if urllib.parse.urlsplit(source_url).scheme not in ("http", "https", "file"):
        raise ConfigError(f"--source-url must be an http(s):// or file:// URL, got {source_url!r}")
    target = dest or default_data_dir()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--dest {target} is not a directory")
    kinds = list(dict.fromkeys(only or KINDS))
    files = {path: origin for path, origin in PUBLIC_FILES.items() if any(path.startswith(KINDS[k][0]) for k in kinds)}
    loaders = {KINDS[k][0]: KINDS[k][1] for k in kinds}
    base = source_url.rstrip("/")
    console = Console(stderr=True)
    fetched = skipped = 0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console, transient=True
    ) as progress:
        task = progress.add_task("downloading", total=len(files))
        for path, origin in files.items():
            local = target / path
            progress.update(task, description=path)
            url = f"{base}/{origin}"
            source = str(local)
            if local.exists() and not force:
                skipped += 1
            else:
                source = url
                try:
                    fetch(url, local)
                except (urllib.error.URLError, OSError, ValueError) as e:
                    reason = getattr(e, "reason", None) or e
                    _fail(f"cannot fetch {url}: {reason}")
                fetched += 1
            loader = next(fn for prefix, fn in loaders.items() if path.startswith(prefix))
            try:
                loader(local)
            except DataError as e:
                local.unlink(missing_ok=True)
                _fail(f"{source} is not in the expected format: {e}")
            progress.advance(task)
    console.print(f"{fetched} downloaded, {skipped} already there, all readable: {target}")
    typer.echo(str(target))
