"""The workstation's JSON API and pages through FastAPI's TestClient: every endpoint, limits, bad
files, auth, CSRF, conflicts, the sign-out lock, exports, and the per-patient call after review."""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import zipfile

import numpy as np
import pytest

from tests.serve.conftest import PASSWORDS, sample_files, token, wait_done


def _files(paths) -> list:
    return [("files", (p.name, p.read_bytes())) for p in paths]


def _case_with_cells(client, headers, paths=None) -> tuple[int, dict]:
    case_id = client.post("/api/cases", json={"sample_id": "P-7", "note": "smear 3"}, headers=headers).json()["id"]
    r = client.post(f"/api/cases/{case_id}/cells", files=_files(paths or sample_files()), headers=headers)
    assert r.status_code == 200, r.text
    return case_id, wait_done(client, case_id, headers)


def test_a_case_from_upload_to_sign_out(lab, tiny_bundle):
    from blastscope.inference.predictor import Predictor

    client, app = lab
    h = token(client)
    case_id, case = _case_with_cells(client, h)
    assert case["progress"]["predicted"] == 10 and case["status"] == "open"
    # every cell's answer is the Predictor's on the same file
    expected = Predictor(tiny_bundle).predict_files(sample_files()).cells.set_index("file")
    for cell in case["cells"]:
        row = expected.loc[str(next(p for p in sample_files() if p.name == cell["name"]))]
        assert cell["result"]["pred"] == row["pred"] and cell["result"]["confidence"] == pytest.approx(row["confidence"])
        assert cell["final_label"] == row["pred"] and cell["decision"] is None
    flagged = [c for c in case["cells"] if c["flagged"]]
    assert flagged and all(c["result"]["review_reason"] for c in flagged)
    assert case["patient"]["review_cells"] == len(flagged) and case["patient"]["counted_cells"] == 10 - len(flagged)
    with pytest.raises(AssertionError):  # flagged cells must be reviewed before sign-out
        r = client.post(f"/api/cases/{case_id}/signout", headers=h)
        assert r.status_code == 200
    assert "not reviewed" in r.json()["error"]
    for c in flagged:  # the reviewer calls every flagged cell "hem"
        r = client.post(f"/api/cells/{c['id']}/review", json={"label": "hem"}, headers=h)
        assert r.status_code == 200 and r.json()["model_label"] == c["result"]["pred"]
    case = client.get(f"/api/cases/{case_id}", headers=h).json()
    finals = [c["final_label"] for c in case["cells"]]
    assert case["patient"]["positive_cells"] == finals.count("all") and case["patient"]["counted_cells"] == 10
    assert case["patient"]["reviewed"] == len(flagged)
    signed = client.post(f"/api/cases/{case_id}/signout", headers=h).json()
    assert signed["status"] == "signed" and signed["signed_by_name"] == "alice"
    # locked: no more cells or decisions
    assert client.post(f"/api/cases/{case_id}/cells", files=_files(sample_files()[:1]), headers=h).status_code == 409
    assert client.post(f"/api/cells/{flagged[0]['id']}/review", json={"label": "all", "expected": None}, headers=h).status_code == 409
    # the record of each decision
    con = sqlite3.connect(app.state.service.db.path)
    rows = con.execute("SELECT d.label, d.model_label, d.bundle_hash, d.time, u.name FROM decisions d JOIN users u ON u.id = d.user_id").fetchall()
    assert len(rows) == len(flagged) and all(r[4] == "alice" and r[2] == app.state.service.bundle_hash and r[3] > 0 for r in rows)


def test_undo_is_a_new_decision_and_conflicts_are_refused(lab):
    client, _ = lab
    alice, bob = token(client, "alice"), token(client, "bob")
    case_id, case = _case_with_cells(client, alice, sample_files()[:3])
    cell = case["cells"][0]["id"]
    first = client.post(f"/api/cells/{cell}/review", json={"label": "hem", "expected": None}, headers=alice).json()
    # bob saw the cell before alice's decision: his decision conflicts and is not stored
    r = client.post(f"/api/cells/{cell}/review", json={"label": "all", "expected": None}, headers=bob)
    assert r.status_code == 409 and r.json()["latest"]["user"] == "alice" and "reviewed meanwhile by alice" in r.json()["error"]
    undo = client.post(f"/api/cells/{cell}/review", json={"label": "all", "expected": first["decision"]}, headers=bob).json()
    assert undo["replaces"] == first["decision"]
    case = client.get(f"/api/cases/{case_id}", headers=alice).json()
    assert [d["label"] for d in case["decisions"]] == ["hem", "all"]  # both kept, the newest counts
    assert case["cells"][0]["final_label"] == "all" and case["cells"][0]["decision"]["user"] == "bob"
    assert client.post(f"/api/cells/{cell}/review", json={"label": "aml"}, headers=alice).status_code == 400


def test_bad_files_are_listed_with_reasons_and_limits_hold(lab, tmp_path):
    client, _ = lab
    h = token(client)
    case_id = client.post("/api/cases", json={"sample_id": "P-8"}, headers=h).json()["id"]
    good = sample_files()[0]
    data = bytearray(good.read_bytes())  # a BMP whose header claims 30000 x 30000 pixels
    data[18:26] = (30000).to_bytes(4, "little") + (30000).to_bytes(4, "little")
    big = ("big.bmp", b"BM" + b"\0" * 2_100_000)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("../../etc/cell.bmp", good.read_bytes())
        z.writestr("zeros.bmp", b"\0" * 1_900_000)  # compresses ~1000x: refused as a bomb
        z.writestr("notes.txt", b"hello")
    files = [("files", (good.name, good.read_bytes())), ("files", ("empty.bmp", b"")), ("files", ("bomb.bmp", bytes(data))),
             ("files", ("fake.jpg", b"this is text")), ("files", big), ("files", ("cells.zip", zbuf.getvalue()))]
    r = client.post(f"/api/cases/{case_id}/cells", files=files, headers=h)
    assert r.status_code == 200
    body = r.json()
    reasons = {b["name"]: b["reason"] for b in body["bad"]}
    assert body["added"] == 2  # the plain cell and the zipped one (its path stripped)
    assert reasons["empty.bmp"] == "empty file (0 bytes)"
    assert "exceeds the limit" in reasons["bomb.bmp"] and "not a decodable image" in reasons["fake.jpg"]
    assert "limit is 2000000" in reasons["big.bmp"]
    assert "zip bomb" in reasons["cells.zip:zeros.bmp"] and "not an image file name" in reasons["cells.zip:notes.txt"]
    names = [c["name"] for c in wait_done(client, case_id, h)["cells"]]
    assert names == [good.name, "cell.bmp"]
    # per-request bytes, per-request count and per-case cell limits
    heavy = [("files", (f"h{i}.bmp", good.read_bytes())) for i in range(14)]  # 14 x 608 kB > 8 MB
    r = client.post(f"/api/cases/{case_id}/cells", files=heavy, headers=h)
    assert r.status_code == 413 and "per request" in r.json()["error"]
    import cv2

    small = cv2.imencode(".png", cv2.resize(cv2.imread(str(good)), (64, 64)))[1].tobytes()
    many = [("files", (f"c{i}.png", small)) for i in range(41)]
    r = client.post(f"/api/cases/{case_id}/cells", files=many, headers=h)
    assert r.json()["added"] == 0 and "per request" in r.json()["bad"][0]["reason"]
    r = client.post(f"/api/cases/{case_id}/cells", files=many[:35], headers=h)
    assert r.json()["added"] == 28 and sum("the case is full" in b["reason"] for b in r.json()["bad"]) == 7


def test_auth_roles_and_csrf(lab):
    client, _ = lab
    assert client.get("/api/cases").status_code == 401
    assert client.post("/api/login", json={"name": "alice", "password": "wrong"}).status_code == 401
    assert client.get("/api/cases", headers={"Authorization": "Bearer forged"}).status_code == 401
    h = token(client)
    case_id, case = _case_with_cells(client, h, sample_files()[:1])
    for c in case["cells"]:
        client.post(f"/api/cells/{c['id']}/review", json={"label": c["result"]["pred"]}, headers=h)
    client.post(f"/api/cases/{case_id}/signout", headers=h)
    # pages: a session cookie and a CSRF token in every form
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    r = client.post("/login", data={"name": "alice", "password": PASSWORDS["alice"]}, follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    page = client.get("/").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    assert client.post("/cases", data={"sample_id": "X", "csrf": "forged"}).status_code == 403
    assert client.post("/cases", data={"sample_id": "X"}).status_code == 403
    r = client.post("/cases", data={"sample_id": "X", "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/cases/")
    # a reviewer cannot reopen a signed case; an admin can
    assert client.post(f"/cases/{case_id}/reopen", data={"csrf": csrf}).status_code == 403
    client.post("/logout", data={"csrf": csrf})
    client.post("/login", data={"name": "root", "password": PASSWORDS["root"]})
    csrf = client.get("/").text.split('name="csrf" value="')[1].split('"')[0]
    assert client.post(f"/cases/{case_id}/reopen", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get(f"/api/cases/{case_id}", headers=h).json()["status"] == "open"


def test_pages_exports_and_escaping(lab):
    client, _ = lab
    h = token(client)
    case_id = client.post("/api/cases", json={"sample_id": "<script>alert(1)</script>", "note": "=cmd|' /C calc'!A0"},
                          headers=h).json()["id"]
    client.post(f"/api/cases/{case_id}/cells", files=[("files", ("=HYPERLINK(1).bmp", sample_files()[0].read_bytes()))], headers=h)
    wait_done(client, case_id, h)
    client.post("/login", data={"name": "alice", "password": PASSWORDS["alice"]})
    page = client.get(f"/cases/{case_id}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert client.get(f"/cases/{case_id}?show=flagged").status_code == 200
    img = client.get(f"/cells/{client.get(f'/api/cases/{case_id}', headers=h).json()['cells'][0]['id']}/image")
    assert img.headers["content-type"] == "image/png" and img.content[:4] == b"\x89PNG"
    rows = list(csv.DictReader(io.StringIO(client.get(f"/cases/{case_id}/export.csv").text)))
    assert rows[0]["file"].startswith("'=")  # neutralised for spreadsheets
    exported = client.get(f"/cases/{case_id}/export.json").json()
    assert exported["case"]["sample_id"] == "<script>alert(1)</script>" and exported["cells"][0]["file"] == "=HYPERLINK(1).bmp"
    report = client.get(f"/cases/{case_id}/report").text
    assert "Patient call" in report and "&lt;script&gt;" in report
    assert client.get("/openapi.json").json()["paths"]["/api/cases/{case_id}/signout"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/api/cases/999", headers=h).status_code == 404


def test_database_schema_is_versioned(tmp_path):
    from blastscope.serve.db import SCHEMA_VERSION, Database, DatabaseError

    db = Database(tmp_path / "a.sqlite")
    con = sqlite3.connect(db.path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(DatabaseError, match="newer"):
        Database(db.path)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.commit()
    with pytest.raises(DatabaseError, match="not a blastscope"):
        Database(other)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseError):
        Database(junk)


def test_passwords_are_hashed_with_scrypt(tmp_path):
    from blastscope.serve.service import hash_password, verify_password

    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored) and not verify_password("wrong", stored)
    assert hash_password("correct horse") != stored  # salted
    assert not verify_password("x", "garbage")


def test_heat_map_on_click(lab):
    pytest.importorskip("captum")
    client, _ = lab
    h = token(client)
    case_id, case = _case_with_cells(client, h, sample_files()[:1])
    client.post("/login", data={"name": "alice", "password": PASSWORDS["alice"]})
    cell = case["cells"][0]["id"]
    page = client.get(f"/cases/{case_id}").text
    assert f'href="/cells/{cell}/heatmap"' in page, page[page.find('class="gallery"'):][:1500]
    r = client.get(f"/cells/{cell}/heatmap")
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    import cv2

    image = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] == 2 * image.shape[0]  # the cell beside its map


def test_form_review_progress_and_logout_pages(lab):
    client, _ = lab
    h = token(client)
    case_id, case = _case_with_cells(client, h, sample_files()[:2])
    client.post("/login", data={"name": "bob", "password": PASSWORDS["bob"]})
    page = client.get(f"/cases/{case_id}").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    progress = client.get(f"/cases/{case_id}/progress").json()
    assert progress["done"] and progress["predicted"] == 2 and progress["job"]["state"] == "done"
    cell = case["cells"][1]["id"]
    r = client.post(f"/cells/{cell}/review", data={"label": "all", "expected": "", "csrf": csrf},
                    headers={"referer": f"/cases/{case_id}?show=flagged"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{case_id}?show=flagged"
    after = client.get(f"/api/cases/{case_id}", headers=h).json()["cells"][1]
    assert after["decision"]["user"] == "bob" and after["final_label"] == "all"
    stale = client.post(f"/cells/{cell}/review", data={"label": "hem", "expected": "", "csrf": csrf}, headers={"accept": "application/json"})
    assert stale.status_code == 409 and "bob" in stale.json()["error"]
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).headers["location"] == "/login"
    assert client.get(f"/cases/{case_id}/progress").status_code == 401  # the session is over


def test_the_workstation_on_the_onnx_backend_gives_the_same_answers(tiny_bundle, tmp_path):
    """``serve --backend onnx``: the cells' answers are onnxruntime's and agree with PyTorch's."""
    from fastapi.testclient import TestClient

    from blastscope.inference.predictor import Predictor
    from blastscope.serve.app import create_app

    from tests.serve.conftest import make_users

    db = tmp_path / "lab.sqlite"
    make_users(db)
    predictor = Predictor(tiny_bundle, backend="onnx")
    assert predictor.backend == "onnx" and predictor.precision == "float32"
    expected = Predictor(tiny_bundle).predict_files(sample_files()).cells.set_index("file")
    with TestClient(create_app(tiny_bundle, db, predictor=predictor)) as client:
        h = token(client)
        _, case = _case_with_cells(client, h)
    assert case["progress"]["predicted"] == 10
    for cell in case["cells"]:
        row = expected.loc[str(next(p for p in sample_files() if p.name == cell["name"]))]
        assert cell["result"]["pred"] == row["pred"]
        assert cell["result"]["confidence"] == pytest.approx(row["confidence"], abs=1e-4)


def test_serve_refuses_a_precision_the_bundle_lacks(tiny_bundle, tmp_path):
    from click.testing import CliRunner

    from blastscope.cli import main

    result = CliRunner().invoke(main, ["serve", str(tiny_bundle), "--db", str(tmp_path / "x.sqlite"), "--backend", "onnx",
                                       "--precision", "int8"])
    assert result.exit_code == 2 and "no int8 graphs: it was exported without --int8" in result.output
