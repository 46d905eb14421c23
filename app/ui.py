"""The web dashboard: server-rendered pages under /ui, thin routes over app.dashboard.

Auth is the API's: the same tokens (`defect-genome token create`), checked the same way (SHA-256 in
api_tokens). A browser signs in once on /ui/login by posting its token; the token is then kept in an
HttpOnly, SameSite=Strict cookie (Secure over https) scoped to /ui, never in a URL. Scripts may send
`Authorization: Bearer <token>` instead. Forms that change state (retry a label, sign out) carry a
CSRF token derived from the session token, checked on POST.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import dashboard
from app.api.deps import PRINTABLE, CampaignId, LabelId, QueryText, SessionDep, StructureId, get_owned_campaign
from app.auth import user_for_token
from app.services import ConflictError, NotFoundError, retry_label
from core import access
from core.models import Campaign, User
from core.settings import get_settings
from core.storage import StructureStore
from formats import EXPORT_NAMES, format_for

HERE = Path(__file__).resolve().parent
COOKIE = "dg_session"
COOKIE_PATH = "/ui"
COOKIE_MAX_AGE = 12 * 3600  # s
EXPORT_FORMATS = {name: format_for(name).description for name in EXPORT_NAMES}  # export name -> label

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)
Page = Annotated[int, Query(ge=1, le=10**6)]
# a name in the query string (stage, cluster, snapshot): printable and short, it reaches SQL
Text = Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)]


class LoginRequired(Exception):
    def __init__(self, next_url: str):
        self.next_url = next_url


def _request_token(request: Request) -> tuple[str | None, bool]:
    """The token and whether it came in the Authorization header (which no other site can make us send)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), True
    return request.cookies.get(COOKIE), False


def csrf_token(token: str) -> str:
    return hashlib.sha256(b"dg-dashboard-csrf:" + token.encode()).hexdigest()[:40]


def ui_user(request: Request, session: SessionDep) -> User:
    token, via_header = _request_token(request)
    user = user_for_token(session, token) if token else None
    if user is None or token is None:  # no token: no user
        if request.url.path.endswith((".json", ".csv")) or request.method != "GET":
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in on /ui/login or send a bearer token")
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    request.state.csrf = csrf_token(token)
    request.state.user = user
    request.state.via_header = via_header
    return user


UiUser = Annotated[User, Depends(ui_user)]


def _owned(session: SessionDep, user: User, campaign_id: int) -> Campaign:
    return get_owned_campaign(campaign_id, session, user)  # the API's rule: another user's is a 404


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    user = getattr(request.state, "user", None)
    base = {"user": user, "csrf": getattr(request.state, "csrf", "")}
    return templates.TemplateResponse(request, name, base | context, status_code=status_code)


def _csv(rows: Sequence[Sequence[Any]], header: list[str], filename: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return Response(buffer.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _check_csrf(request: Request, value: str) -> None:
    if getattr(request.state, "via_header", False):
        return  # a bearer header is never sent by a browser on another site's behalf
    expected = getattr(request.state, "csrf", "")
    if not expected or not hmac.compare_digest(expected, value):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the form is stale or foreign (CSRF check); reload the page")


# --------------------------------------------------------------------------- sign-in


@router.get("", response_class=RedirectResponse)
@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/ui/campaigns", status.HTTP_303_SEE_OTHER)


def _safe_next(next_url: str | None) -> str:
    # only our own pages: no scheme, no host, no protocol-relative //evil
    if next_url and next_url.startswith("/ui/") and not next_url.startswith("//") and "\\" not in next_url:
        return next_url
    return "/ui/campaigns"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, session: SessionDep, token: Annotated[str, Form()],
          next: Annotated[str | None, Form()] = None) -> Response:
    token = token.strip()
    if not token or user_for_token(session, token) is None:
        return _render(request, "login.html", {"next": _safe_next(next),
                                               "error": "unknown token; create one with `defect-genome token create`"},
                       status_code=status.HTTP_401_UNAUTHORIZED)
    response = RedirectResponse(_safe_next(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request, user: UiUser, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    _check_csrf(request, csrf)
    response = RedirectResponse("/ui/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


# --------------------------------------------------------------------------- campaigns


@router.get("/campaigns", response_class=HTMLResponse)
def campaigns(request: Request, session: SessionDep, user: UiUser, page: Page = 1) -> HTMLResponse:
    rows, pager = dashboard.campaign_page(session, user.id, page)
    return _render(request, "campaigns.html", {"campaigns": rows, "pager": pager})


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(request: Request, session: SessionDep, user: UiUser, campaign_id: CampaignId, labels_page: Page = 1,
                  structures_page: Page = 1, stage: Text = None, cluster: Text = None, scenario: Text = None,
                  message: str | None = None) -> HTMLResponse:
    campaign = _owned(session, user, campaign_id)
    clusters = dashboard.cluster_names(session, campaign.id)
    chosen = cluster if cluster in clusters else (clusters[0] if clusters else None)
    labels, label_pager, label_states = dashboard.label_page(session, campaign.id, labels_page)
    histograms = dashboard.gamma_histograms(session, campaign.id)
    return _render(request, "campaign.html", {
        "campaign": campaign,
        "progress": dashboard.progress(session, campaign),
        "histograms": histograms,
        "training_sets": dashboard.training_set_histograms(session, campaign.id),
        "species_histograms": dashboard.species_histograms(session, campaign.id),
        "gamma_max": dashboard.gamma_max_series(session, campaign.id),
        "clusters": clusters,
        "grid": dashboard.box_grid(session, campaign.id, chosen) if chosen else None,
        "soap": dashboard.soap_pca(session, campaign.id),
        "refinement": dashboard.refinement_results(session, campaign.id),
        "validation": dashboard.validation_results(session, campaign.id, scenario),
        "labels": labels, "label_pager": label_pager, "label_states": label_states,
        "export_formats": EXPORT_FORMATS,
        **dict(zip(("structures", "structure_pager", "structure_stages"),
                   dashboard.structure_page(session, campaign.id, structures_page, stage or None), strict=True)),
        "stage": stage or "",
        "message": message,
    })


@router.get("/campaigns/{campaign_id}/progress.json")
def campaign_progress(session: SessionDep, user: UiUser, campaign_id: CampaignId) -> JSONResponse:
    campaign = _owned(session, user, campaign_id)
    return JSONResponse(dashboard.progress(session, campaign), headers={"Cache-Control": "no-store"})


@router.get("/campaigns/{campaign_id}/histograms.json")
def histograms_json(session: SessionDep, user: UiUser, campaign_id: CampaignId,
                    snapshot: Text = None) -> JSONResponse:
    campaign = _owned(session, user, campaign_id)
    if snapshot is not None:
        histogram = dashboard.snapshot_histogram(session, campaign.id, snapshot)
        if histogram is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no gamma histogram for snapshot {snapshot!r}")
        return JSONResponse({snapshot: histogram})
    return JSONResponse(dashboard.gamma_histograms(session, campaign.id))


@router.get("/campaigns/{campaign_id}/histograms.csv")
def histograms_csv(session: SessionDep, user: UiUser, campaign_id: CampaignId) -> Response:
    campaign = _owned(session, user, campaign_id)
    rows = []
    histograms = dict(dashboard.gamma_histograms(session, campaign.id))
    histograms.update(dashboard.training_set_histograms(session, campaign.id)["histograms"])
    for name, histogram in histograms.items():
        edges = histogram["edges"]
        rows += [[name, edges[i], edges[i + 1], count] for i, count in enumerate(histogram["counts"])]
    return _csv(rows, ["dataset", "gamma_from", "gamma_to", "count"], f"campaign-{campaign.id}-gamma-histograms.csv")


@router.get("/campaigns/{campaign_id}/gamma-max.csv")
def gamma_max_csv(session: SessionDep, user: UiUser, campaign_id: CampaignId) -> Response:
    campaign = _owned(session, user, campaign_id)
    series = dashboard.gamma_max_series(session, campaign.id, max_points=10**9)
    rows = list(zip(series["index"], series["structure_id"], series["source"], series["gamma_max"], strict=True))
    return _csv(rows, ["snapshot", "structure_id", "source", "gamma_max"], f"campaign-{campaign.id}-gamma-max.csv")


@router.get("/campaigns/{campaign_id}/otf-gamma-max.csv")
def otf_gamma_max_csv(session: SessionDep, user: UiUser, campaign_id: CampaignId) -> Response:
    campaign = _owned(session, user, campaign_id)
    results = dashboard.refinement_results(session, campaign.id)
    iterations = results["iterations"] if results else []
    rows = [[it["index"], run["target"], step, gamma_max] for it in iterations for run in it["runs"]
            for step, gamma_max in zip(run["snapshot_steps"], run["gamma_max"], strict=True)]
    return _csv(rows, ["iteration", "target", "step", "gamma_max"], f"campaign-{campaign.id}-otf-gamma-max.csv")


@router.get("/campaigns/{campaign_id}/soap-pca.csv")
def soap_csv(session: SessionDep, user: UiUser, campaign_id: CampaignId) -> Response:
    campaign = _owned(session, user, campaign_id)
    soap = dashboard.soap_pca(session, campaign.id)
    if soap is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"campaign {campaign.id} has no SOAP PCA map yet")
    rows = [[name, x, y] for name, points in soap["points"].items() for x, y in points]
    return _csv(rows, ["dataset", "pc1", "pc2"], f"campaign-{campaign.id}-soap-pca.csv")


@router.get("/campaigns/{campaign_id}/box-grid.csv")
def box_grid_csv(session: SessionDep, user: UiUser, campaign_id: CampaignId, cluster: QueryText) -> Response:
    campaign = _owned(session, user, campaign_id)
    grid = dashboard.box_grid(session, campaign.id, cluster)
    if grid is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no PCC-GCMC candidates for cluster {cluster!r}")
    rows = [[r["index"], *r["box"], r["n_atoms"], r["energy_per_atom"], r["admissible"], r["best"]]
            for r in grid["rows"]]
    return _csv(rows, ["candidate", "lx", "ly", "lz", "atoms", "energy_per_atom", "admissible", "best"],
                f"campaign-{campaign.id}-box-grid.csv")


@router.get("/campaigns/{campaign_id}/validation.csv")
def validation_csv(session: SessionDep, user: UiUser, campaign_id: CampaignId) -> Response:
    campaign = _owned(session, user, campaign_id)
    results = dashboard.validation_results(session, campaign.id)
    if results is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"campaign {campaign.id} has no validation study yet")
    rows = [[row[c] for c in dashboard.VALIDATION_COLUMNS] for row in results["rows"]]
    return _csv(rows, dashboard.VALIDATION_COLUMNS, f"campaign-{campaign.id}-validation.csv")


@router.post("/campaigns/{campaign_id}/labels/{label_id}/retry")
def retry(request: Request, session: SessionDep, user: UiUser, campaign_id: CampaignId, label_id: LabelId,
          csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    _check_csrf(request, csrf)
    campaign = _owned(session, user, campaign_id)
    try:
        retry_label(session, campaign, label_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    text = quote(f"label {label_id} queued again; the campaign's labelling resumed")
    return RedirectResponse(f"/ui/campaigns/{campaign.id}?message={text}#labels", status.HTTP_303_SEE_OTHER)


@router.get("/campaigns/{campaign_id}/export")
def export(session: SessionDep, user: UiUser, campaign_id: CampaignId,
           format: Annotated[Literal["mtp", "ace", "extxyz"], Query()],
           datasets: str = "B,P") -> Response:
    from app.api.campaigns import export as api_export

    campaign = _owned(session, user, campaign_id)
    return api_export(campaign, session, format, datasets, None, None)


# --------------------------------------------------------------------------- structures


@router.get("/structures/{structure_id}", response_class=HTMLResponse)
def structure_page(request: Request, session: SessionDep, user: UiUser, structure_id: StructureId,
                   page: Page = 1) -> HTMLResponse:
    owned = access.get_structure_for_owner(session, structure_id, user.id)
    if owned is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"structure {structure_id} not found")
    structure, campaign = owned
    atoms = StructureStore(get_settings().data_dir).read(structure.path)
    colours = dashboard.structure_colours(session, structure, atoms)
    symbols = atoms.get_chemical_symbols()
    xyz = f"{len(atoms)}\n{structure.source}\n" + "".join(
        f"{s} {x:.5f} {y:.5f} {z:.5f}\n" for s, (x, y, z) in zip(symbols, atoms.positions, strict=True)
    )
    if colours["mode"] == "core":
        listed = list(range(len(atoms)))
    else:
        listed = [i for i, g in enumerate(colours["gamma"]) if g is not None]
    pager = dashboard.paging(page, dashboard.ATOMS_PER_PAGE, len(listed))
    rows = [
        {"index": i, "symbol": symbols[i], "position": [round(float(v), 3) for v in atoms.positions[i]],
         "value": colours["category"][i] if colours["mode"] == "core" else colours["gamma"][i]}
        for i in listed[pager.offset: pager.offset + pager.per_page]
    ]
    return _render(request, "structure.html", {
        "structure": structure, "campaign": campaign, "xyz": xyz, "colours": colours, "rows": rows,
        "pager": pager, "cell": atoms.cell.array.tolist(), "pbc": [bool(p) for p in atoms.pbc],
    })


# --------------------------------------------------------------------------- wiring


def install(app: FastAPI) -> None:
    """Routes, static files (our CSS/JS and the vendored uPlot and 3Dmol.js) and the error pages."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/ui/login?next={quote(exc.next_url, safe='')}", status.HTTP_303_SEE_OTHER)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if not path.startswith("/ui/") or path.endswith((".json", ".csv")):
            return await http_exception_handler(request, exc)
        return _render(request, "error.html", {"status_code": exc.status_code, "detail": exc.detail},
                       status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        path = request.url.path
        if not path.startswith("/ui/") or path.endswith((".json", ".csv")):
            return await request_validation_exception_handler(request, exc)
        detail = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
                  for e in exc.errors()]
        return _render(request, "error.html", {"status_code": 422, "detail": detail}, status_code=422)
