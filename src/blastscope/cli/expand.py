"""`blastscope data expand`: write LeukemiaNet's enlarged training set ("Dataset 1" / "Dataset 2") to disk.

LeukemiaNet paper, section 4.3: "Dataset 1" = the originals plus conventional augmentations
(section 3.1.1), "Dataset 2" = Dataset 1 plus PCA colour augmentation (section 3.1.2). The
writing is :func:`blastscope.transforms.expand.expand_dataset`; this command reads any supported
layout, keeps the labelled TRAINING images (held-out ``validation``/``test`` images are never
expanded), fits the PCA colour augmentation on those originals, and records where every written
file came from so subject-level splits stay possible:

- ``OUT/<label>/*.png``: the images (names in :mod:`blastscope.transforms.expand`);
- ``OUT/sources.csv``: ``file,label,subject_id,source`` for every written file;
- ``OUT/subjects.csv``: ``file,subject_id`` (only when the source has subject ids), for
  ``blastscope cv ... --data OUT --subjects-csv OUT/subjects.csv``: copies stay with their subject.
"""
from __future__ import annotations

from pathlib import Path

import click

from blastscope.cli import _bar, _fail
from blastscope.cli.data import data


@data.command("expand")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--copies", type=int, default=1, show_default=True,
              help="Copies of EACH of the ten conventional augmentations per original (Dataset 1: 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed writes byte-identical files.")
@click.option("--pca", is_flag=True, help="Also write PCA colour copies of each original (Dataset 2); "
                                          "the PCA is fitted on the training originals of SRC.")
@click.option("--pca-copies", type=int, default=1, show_default=True, help="PCA colour copies per original with --pca.")
@click.option("--layout", type=click.Choice(["auto", "cnmc", "all-idb1", "all-idb2", "folder"]), default="auto")
@click.option("--subjects-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
def data_expand(src: Path, out: Path, copies: int, seed: int, pca: bool, pca_copies: int, layout: str, subjects_csv) -> None:
    """Write SRC's labelled training images and their augmented copies to OUT, one folder per class."""
    import pandas as pd

    from blastscope.data.decode import read_image
    from blastscope.data.index import IndexError_
    from blastscope.data.readers import read_dataset
    from blastscope.engine.atomic import atomic_write_text
    from blastscope.transforms.conventional import leukemianet_conventional_augmentations
    from blastscope.transforms.expand import expand_dataset
    from blastscope.transforms.pca_colour import PCAColourAugment

    if copies < 0 or pca_copies < 0:
        _fail(f"--copies and --pca-copies must be >= 0, got copies={copies} pca_copies={pca_copies}")
    try:
        index = read_dataset(src, layout=layout, subjects_csv=subjects_csv)
    except IndexError_ as e:
        _fail(str(e))
    labelled = index[index["label"].str.len() > 0]
    train = labelled[~labelled["split"].isin(("validation", "test"))].reset_index(drop=True)
    skipped = len(labelled) - len(train)
    if train.empty:
        _fail(f"{src}: no labelled training images to expand")
    if out.exists() and out.resolve() == src.resolve():
        _fail("OUT must differ from SRC")
    augmentations = leukemianet_conventional_augmentations()
    colour = None
    if pca:
        with _bar(total=len(train), desc="fitting PCA colour") as bar:
            def images():
                for path in train["path"]:
                    yield read_image(path)
                    bar.update(1)

            colour = PCAColourAugment().fit(images())
    items = list(zip(train["path"], train["label"]))
    try:
        written = expand_dataset(items, out, copies, augmentations, seed, pca=colour, pca_copies=pca_copies)
    except ValueError as e:
        _fail(str(e))
    per_item = 1 + copies * len(augmentations) + (pca_copies if pca else 0)
    rows = []
    for i, row in train.iterrows():
        for path in written[i * per_item:(i + 1) * per_item]:
            rows.append({"file": Path(path).relative_to(out).as_posix(), "label": row["label"],
                         "subject_id": row["subject_id"], "source": row["path"]})
    sources = pd.DataFrame(rows)
    atomic_write_text(out / "sources.csv", sources.to_csv(index=False))
    has_subjects = bool((train["subject_id"].str.len() > 0).all())
    if has_subjects:
        atomic_write_text(out / "subjects.csv", sources[["file", "subject_id"]].to_csv(index=False))
    kind = "Dataset 2 (conventional + PCA colour)" if pca else "Dataset 1 (conventional)"
    click.echo(f"wrote {len(written)} images ({len(train)} originals x {per_item}) of {kind} to {out}"
               + (f"; skipped {skipped} held-out images" if skipped else ""))
    if has_subjects:
        click.echo(f"subject ids kept: train with --data {out} --subjects-csv {out / 'subjects.csv'}")
    else:
        click.echo("no subject ids in SRC: any split of OUT is image-level (--grouping image), and copies "
                   "of one original can land in different folds (optimistic)")
