"""The lab workstation's web application (FastAPI, Jinja2 pages, a little plain JavaScript).

Pages (session cookie, CSRF token in every form): login, cases, a case (gallery with filters,
progress bar, per-patient call, model card), review (keyboard: one key per class, arrows to
move), sign-out, exports (CSV, JSON, printable HTML). JSON API under ``/api`` (the same
operations; ``Authorization: Bearer <token>`` from ``POST /api/login``), documented at ``/docs``.
Everything the page loads ships in the package (no CDN). It reads a model bundle and never trains.
"""
# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations, which
# name classes imported inside create_app (the serve extra is imported only where it is used).
import hashlib
import logging
import time
from contextlib import asynccontextmanager
from importlib.resources import files as package_files
from pathlib import Path

from blastscope.serve.db import Database
from blastscope.serve.service import Service, ServiceError, User
from blastscope.serve.uploads import Limits
from blastscope.serve.worker import Worker

__all__ = ["create_app"]

logger = logging.getLogger(__name__)
COOKIE = "blastscope_session"


def _bundle_hash(bundle_dir: Path) -> str:
    return hashlib.sha256((bundle_dir / "manifest.json").read_bytes()).hexdigest()


def create_app(bundle: Path | str, db_path: Path | str, limits: Limits = Limits(), worker: bool = True,
               predictor=None):
    """The FastAPI application for ``bundle`` (verified on load) and the database file ``db_path``."""
    from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates
    from pydantic import BaseModel

    from blastscope.inference.predictor import Predictor

    class LoginBody(BaseModel):
        name: str
        password: str

    class CaseBody(BaseModel):
        sample_id: str
        note: str = ""

    class ReviewBody(BaseModel):
        label: str
        expected: int | None = None

    bundle = Path(bundle)
    predictor = predictor or Predictor(bundle)
    db = Database(db_path)
    service = Service(db, predictor, limits, _bundle_hash(bundle))
    jobs = Worker(db, predictor)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if worker:
            jobs.start()
        try:
            yield
        finally:
            jobs.stop()

    app = FastAPI(title="blastscope lab workstation", version="1", lifespan=lifespan,
                  description="Upload a patient's cells, review the flagged ones, sign out the case.")
    app.state.service, app.state.worker = service, jobs
    root = package_files("blastscope.serve")
    templates = Jinja2Templates(directory=str(root / "templates"))
    app.mount("/static", StaticFiles(directory=str(root / "static")), name="static")
    card = predictor.bundle.spec.get("model_card") or {}

    @app.exception_handler(ServiceError)
    def _service_error(request: Request, exc: ServiceError):
        if request.url.path.startswith("/api/") or request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse({"error": exc.message, **exc.detail}, status_code=exc.status)
        return templates.TemplateResponse(request, "error.html", {"message": exc.message, "status": exc.status},
                                          status_code=exc.status)

    # ------------------------------------------------------------------------------ sessions
    def page_user(request: Request) -> tuple[User, str]:
        found = service.session(request.cookies.get(COOKIE))
        if found is None:
            raise ServiceError(401, "please log in")
        return found

    def api_user(request: Request) -> User:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        found = service.session(token)
        if found is None:
            raise ServiceError(401, "a valid 'Authorization: Bearer <token>' header is needed (POST /api/login)")
        return found[0]

    def check_csrf(session: tuple[User, str], token: str) -> User:
        user, csrf = session
        if not token or token != csrf:
            raise ServiceError(403, "the form's CSRF token is missing or wrong: reload the page")
        return user

    # ------------------------------------------------------------------------------- pages
    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, error: str = ""):
        return templates.TemplateResponse(request, "login.html", {"error": error})

    @app.post("/login")
    def login(name: str = Form(...), password: str = Form(...)):
        try:
            token, _, _ = service.login(name, password)
        except ServiceError:
            return RedirectResponse("/login?error=unknown+user+or+wrong+password", status_code=303)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=12 * 3600)
        return response

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form(""), session=Depends(page_user)):
        check_csrf(session, csrf)
        service.logout(request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request):
        found = service.session(request.cookies.get(COOKIE))
        if found is None:
            return RedirectResponse("/login", status_code=303)
        user, csrf = found
        return templates.TemplateResponse(request, "cases.html", {"user": user, "csrf": csrf, "cases": service.cases(),
                                                                  "card": card})

    @app.post("/cases")
    def create_case_page(sample_id: str = Form(...), note: str = Form(""), csrf: str = Form(""), session=Depends(page_user)):
        user = check_csrf(session, csrf)
        case_id = service.create_case(user, sample_id, note)
        return RedirectResponse(f"/cases/{case_id}", status_code=303)

    @app.get("/cases/{case_id}", response_class=HTMLResponse)
    def case_page(request: Request, case_id: int, show: str = "all", cls: str = "", session=Depends(page_user)):
        user, csrf = session
        case = service.case(case_id)
        cells = [c for c in case["cells"] if (show != "flagged" or c["flagged"]) and (not cls or c["final_label"] == cls)]
        return templates.TemplateResponse(request, "case.html", {
            "user": user, "csrf": csrf, "case": case, "cells": cells, "show": show, "cls": cls,
            "classes": predictor.class_names, "card": card, "progress": service.progress(case_id),
            "keys": {c: str(i + 1) for i, c in enumerate(predictor.class_names)},
            "alpha": predictor.alpha, "heatmaps": _heatmaps_available(predictor)})

    @app.post("/cases/{case_id}/cells")
    async def upload_page(request: Request, case_id: int, csrf: str = Form(""), files: list[UploadFile] = File(...),
                          session=Depends(page_user)):
        user = check_csrf(session, csrf)
        payload = await _read_uploads(files, limits)
        result = service.add_cells(user, case_id, payload)
        if request.headers.get("accept", "").startswith("application/json"):
            return result
        return RedirectResponse(f"/cases/{case_id}?uploaded={result['added']}", status_code=303)

    @app.post("/cells/{cell_id}/review")
    def review_page(request: Request, cell_id: int, label: str = Form(...), expected: str = Form(""), csrf: str = Form(""),
                    session=Depends(page_user)):
        user = check_csrf(session, csrf)
        done = service.review(user, cell_id, label, int(expected) if expected else None)
        if request.headers.get("accept", "").startswith("application/json"):
            return done
        return RedirectResponse(request.headers.get("referer") or "/", status_code=303)

    @app.post("/cases/{case_id}/signout")
    def sign_out_page(case_id: int, csrf: str = Form(""), session=Depends(page_user)):
        user = check_csrf(session, csrf)
        service.sign_out(user, case_id)
        return RedirectResponse(f"/cases/{case_id}", status_code=303)

    @app.post("/cases/{case_id}/reopen")
    def reopen_page(case_id: int, csrf: str = Form(""), session=Depends(page_user)):
        user = check_csrf(session, csrf)
        service.reopen(user, case_id)
        return RedirectResponse(f"/cases/{case_id}", status_code=303)

    @app.get("/cases/{case_id}/progress")
    def progress_page(case_id: int, session=Depends(page_user)):
        return service.progress(case_id)

    @app.get("/cells/{cell_id}/image")
    def cell_image(cell_id: int, size: int = 160, session=Depends(page_user)):
        return Response(_thumbnail(*service.cell_image(cell_id), size), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/cells/{cell_id}/heatmap")
    def cell_heatmap(cell_id: int, session=Depends(page_user)):
        """The cell beside its SmoothGrad heat map for the model's class (needs Captum and a pixel model)."""
        from importlib.util import find_spec

        if find_spec("captum") is None or predictor.bundle.spec["input"]["name"] != "rgb":
            raise ServiceError(404, "no heat maps for this bundle (needs Captum and a model that reads pixels)")
        return Response(_heatmap(predictor, *service.cell_image(cell_id)), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/cases/{case_id}/export.csv")
    def export_csv(case_id: int, session=Depends(page_user)):
        return PlainTextResponse(service.export_csv(case_id), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="case-{case_id}.csv"'})

    @app.get("/cases/{case_id}/export.json")
    def export_json(case_id: int, session=Depends(page_user)):
        case, rows = service.export_rows(case_id)
        return {"case": _case_summary(case), "cells": rows, "decisions": case["decisions"], "model_card": card}

    @app.get("/cases/{case_id}/report", response_class=HTMLResponse)
    def case_report(request: Request, case_id: int, session=Depends(page_user)):
        case, rows = service.export_rows(case_id)
        return templates.TemplateResponse(request, "report.html", {"case": case, "rows": rows, "card": card,
                                                                   "generated": time.strftime("%Y-%m-%d %H:%M")})

    # --------------------------------------------------------------------------------- API
    @app.post("/api/login", tags=["api"])
    def api_login(body: LoginBody):
        token, _, user = service.login(body.name, body.password)
        return {"token": token, "user": user.name, "role": user.role}

    @app.get("/api/cases", tags=["api"])
    def api_cases(user: User = Depends(api_user)):
        return service.cases()

    @app.post("/api/cases", tags=["api"], status_code=201)
    def api_create_case(body: CaseBody, user: User = Depends(api_user)):
        return {"id": service.create_case(user, body.sample_id, body.note)}

    @app.post("/api/cases/{case_id}/cells", tags=["api"])
    async def api_add_cells(case_id: int, files: list[UploadFile] = File(...), user: User = Depends(api_user)):
        return service.add_cells(user, case_id, await _read_uploads(files, limits))

    @app.get("/api/cases/{case_id}", tags=["api"])
    def api_case(case_id: int, user: User = Depends(api_user)):
        case = service.case(case_id)
        return {**_case_summary(case), "progress": service.progress(case_id), "cells": case["cells"], "decisions": case["decisions"]}

    @app.post("/api/cells/{cell_id}/review", tags=["api"])
    def api_review(cell_id: int, body: ReviewBody, user: User = Depends(api_user)):
        return service.review(user, cell_id, body.label, body.expected)

    @app.post("/api/cases/{case_id}/signout", tags=["api"])
    def api_sign_out(case_id: int, user: User = Depends(api_user)):
        return _case_summary(service.sign_out(user, case_id))

    return app


def _heatmaps_available(predictor) -> bool:
    from importlib.util import find_spec

    return find_spec("captum") is not None and predictor.bundle.spec["input"]["name"] == "rgb"


def _case_summary(case: dict) -> dict:
    keep = ("id", "sample_id", "note", "status", "created", "created_by_name", "signed_at", "signed_by_name", "bundle_hash", "patient")
    return {k: case.get(k) for k in keep}


async def _read_uploads(files: list, limits: Limits) -> list[tuple[str, bytes]]:
    """Read the request's files, refusing a request larger than the limit before it is all in memory
    (each read stops one byte past what the request may still hold, so nothing is truncated silently)."""
    out, total = [], 0
    for f in files:
        data = await f.read(limits.max_request_bytes - total + 1)
        total += len(data)
        if total > limits.max_request_bytes:
            raise ServiceError(413, f"the upload exceeds {limits.max_request_bytes} bytes per request")
        out.append((f.filename or "unnamed", data))
    return out


def _thumbnail(name: str, data: bytes, size: int) -> bytes:
    import cv2
    import numpy as np

    from blastscope.data.decode import decode_image

    size = max(32, min(int(size), 512))
    image = decode_image(data, name)
    h, w = image.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    return png.tobytes()


def _heatmap(predictor, name: str, data: bytes) -> bytes:
    from blastscope.data.decode import decode_image
    from blastscope.inference.heatmaps import overlay_png, pixel_heatmaps

    image = predictor.preprocess(decode_image(data, name))
    pred = predictor.predict_images(image[None]).pred
    heat = pixel_heatmaps([m for m, _ in predictor.bundle.torch_models()], image[None], pred)[0]
    return overlay_png(image, heat)

