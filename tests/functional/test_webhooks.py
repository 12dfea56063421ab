"""Webhooks end to end: authentic deliveries deploy or are ignored with a reason; hostile
requests get the documented status, touch no table and start nothing; repeats are answered
from the first time."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import threading
import uuid
from typing import Any

import pytest
import requests

from devstack.stack import LocalStack

from .conftest import CORPUS_SECRETS, EVENTS, auth, wait_for

ZERO = "0" * 40


def case(case_id: str) -> tuple[bytes, dict[str, str]]:
    body = (EVENTS / f"{case_id}.json").read_bytes()
    meta = json.loads((EVENTS / f"{case_id}.meta.json").read_text())
    return body, dict(meta["headers"])


def all_cases() -> list[str]:
    return [
        entry["case_id"]
        for provider in ("github", "gitlab", "bitbucket")
        for entry in json.loads((EVENTS / provider / "index.json").read_text())
    ]


# What each corpus delivery must do under tests/functional/pipeline-corpus.toml:
# ("deploy", "<app>/<env>") or ("ignored", "<words the reason contains>").
EXPECTED: dict[str, tuple[str, str]] = {
    "github/push/1": ("deploy", "hello-world/production"),
    "github/push/2": ("deploy", "woodpecker/production"),
    "github/push/3": ("deploy", "oxiduct/production"),  # force push deploys like any push
    "github/push/4": ("ignored", "branch deleted"),
    "github/push/5": ("ignored", "deploys tag simple-tag"),
    "github/push/6": ("ignored", "tag deleted"),
    "github/push/7": ("deploy", "hello-world/production"),  # branch created with a commit
    "github/push/8": ("ignored", "deploys branch feature-branch"),
    "github/push/9": ("deploy", "drone-test-go/production"),  # tag v0.0.1 matches "v*"
    "github/push/10": ("ignored", "not configured"),
    "github/ping/1": ("ignored", "ping"),
    "github/ping/2": ("ignored", "ping"),
    # CI green on master, but no push to master was seen: its head is unknown, so nothing
    # deploys (test_ci_* below push the head first)
    "github/workflow_run/1": ("ignored", "head is unknown"),
    "github/workflow_run/2": ("ignored", "not handled"),
    "github/workflow_run/3": ("ignored", "nothing deployed"),  # CI not green
    "github/check_suite/1": ("ignored", "head is unknown"),  # staging waits for CI on main
    "github/check_suite/2": ("ignored", "branch changes"),
    "github/check_suite/3": ("ignored", "not handled"),
    "gitlab/push/1": ("deploy", "diaspora/production"),
    "gitlab/push/2": ("deploy", "gl-hello/production"),
    "gitlab/push/3": ("ignored", "deploys branch feature"),
    "gitlab/push/4": ("ignored", "branch deleted"),
    "gitlab/push/5": ("deploy", "gl-woodpecker/production"),
    "gitlab/tag_push/1": ("ignored", "only on request"),  # jsmith/example: trigger = manual
    "gitlab/tag_push/2": ("deploy", "gl-hello/production"),
    "gitlab/tag_push/3": ("ignored", "tag deleted"),
    "gitlab/tag_push/4": ("deploy", "gl-woodpecker/production"),
    "bitbucket/repo_push/1": ("deploy", "foo/production"),
    "bitbucket/repo_push/2": ("ignored", "deploys branch develop"),
    "bitbucket/repo_push/3": ("ignored", "branch deleted"),
    "bitbucket/repo_push/4": ("ignored", "deploys tag feature/x"),
    "bitbucket/repo_push/5": ("ignored", "tag deleted"),
    "bitbucket/repo_push/6": ("deploy", "publictestrepo/production"),
}
NOT_HANDLED = ("create", "delete", "deployment", "deployment_status", "pull_request", "release")


def expected(case_id: str) -> tuple[str, str]:
    if case_id.split("/")[1] in NOT_HANDLED:
        return ("ignored", "not handled")
    return EXPECTED[case_id]


def deploy_count(stack: LocalStack) -> int:
    from chalicelib.adapters.dynamo import DeployModel

    return DeployModel.count()


def test_every_corpus_case_is_covered() -> None:
    assert set(all_cases()) == {
        c for c in all_cases() if c in EXPECTED or c.split("/")[1] in NOT_HANDLED
    }
    assert len(all_cases()) == 50


@pytest.mark.parametrize("case_id", all_cases())
def test_corpus_delivery_over_http_gets_the_right_answer(
    case_id: str, corpus_stack: LocalStack, api_url: str
) -> None:
    provider = case_id.split("/", maxsplit=1)[0]
    body, headers = case(case_id)
    response = requests.post(
        f"{api_url}/webhooks/{provider}", data=body, headers=headers, timeout=30
    )
    kind, detail = expected(case_id)
    answer = response.json()
    if kind == "ignored":
        assert response.status_code == 200, answer
        assert answer["result"] == "ignored" and detail in answer["reason"], answer
        assert deploy_count(corpus_stack) == 0
        return
    assert response.status_code == 202, answer
    app, env = detail.split("/")
    assert [(d["app"], d["environment"]) for d in answer["deploys"] if "deploy_id" in d] == [
        (app, env)
    ]
    with requests.Session() as s:
        s.headers.update(auth())
        record = s.get(f"{api_url}/deploys/{answer['deploy_id']}", timeout=30).json()
        assert record["requested_via"] == provider
        assert record["trigger"]["delivery_id"] == answer["delivery_id"]
        assert len(record["sha"]) == 40
        # a redelivery gets the same answer and no second deploy
        again = requests.post(
            f"{api_url}/webhooks/{provider}", data=body, headers=headers, timeout=30
        )
        assert (again.status_code, again.json()) == (202, answer)
        assert deploy_count(corpus_stack) == 1
        _wait_http(s, api_url, answer["deploy_id"])


def _wait_http(session: requests.Session, url: str, deploy_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = session.get(f"{url}/deploys/{deploy_id}", timeout=30).json()
        if record["status"] not in ("queued", "running"):
            return dict(record)
        time.sleep(0.2)
    pytest.fail(f"{deploy_id} did not finish")


def test_a_push_record_says_who_pushed_what_range_and_the_head_commit(
    corpus_stack: LocalStack, client: Any
) -> None:
    body, headers = case("github/push/1")
    response = client.http.post("/webhooks/github", body=body, headers=headers)
    assert response.status_code == 202
    record = wait_for(client, response.json_body["deploy_id"])
    facts = json.loads((EVENTS / "github/push/1.meta.json").read_text())["facts"]
    trigger = record["trigger"]
    assert record["requested_by"] == "Codertocat" and record["requested_via"] == "github"
    assert record["sha"] == facts["after"]
    assert trigger["range"] == f"{facts['before']}..{facts['after']}"
    assert trigger["delivery_id"] == headers["X-GitHub-Delivery"]
    assert trigger["compare_url"].startswith("https://github.com/Codertocat/Hello-World/compare/")
    head = trigger["head_commit"]
    assert (
        head["sha"] == facts["after"] and head["message"] and head["author"] and head["timestamp"]
    )
    assert record["reason"].startswith("push to master")
    # the corpus SHA is not in the app's repository: the rollout fails while staging, truthfully
    assert record["status"] == "failed" and record["error"]["phase"] == "staging"


def resign(body: bytes, headers: dict[str, str], provider: str) -> dict[str, str]:
    headers = dict(headers)
    if provider == "github":
        secret = CORPUS_SECRETS["github_webhook_secret"].encode()
        headers["X-Hub-Signature-256"] = (
            "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        )
        headers.pop("X-Hub-Signature", None)
    elif provider == "bitbucket":
        secret = CORPUS_SECRETS["bitbucket_webhook_secret"].encode()
        headers["X-Hub-Signature"] = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return headers


def with_delivery(headers: dict[str, str], provider: str) -> dict[str, str]:
    key = {
        "github": "X-GitHub-Delivery",
        "gitlab": "Idempotency-Key",
        "bitbucket": "X-Request-UUID",
    }
    return {**headers, key[provider]: str(uuid.uuid4())}


def test_github_form_encoded_delivery_deploys(corpus_stack: LocalStack, client: Any) -> None:
    from urllib.parse import urlencode

    json_body, headers = case("github/push/2")
    body = urlencode({"payload": json_body.decode()}).encode()
    headers = resign(
        body, {**headers, "Content-Type": "application/x-www-form-urlencoded"}, "github"
    )
    response = client.http.post("/webhooks/github", body=body, headers=headers)
    assert response.status_code == 202, response.body
    wait_for(client, response.json_body["deploy_id"])


HOSTILE = [
    # (name, provider, mutate(body, headers) -> (body, headers), status)
    (
        "no signature",
        "github",
        lambda b, h: (b, {k: v for k, v in h.items() if not k.startswith("X-Hub")}),
        401,
    ),
    (
        "wrong signature",
        "github",
        lambda b, h: (b, {**h, "X-Hub-Signature-256": "sha256=" + "0" * 64}),
        401,
    ),
    (
        "body changed after signing",
        "github",
        lambda b, h: (b.replace(b"master", b"mastex"), h),
        401,
    ),
    (
        "sha1 only, not allowed",
        "github",
        lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Hub-Signature-256"}),
        401,
    ),
    ("wrong gitlab token", "gitlab", lambda b, h: (b, {**h, "X-Gitlab-Token": "nope"}), 401),
    (
        "no gitlab token",
        "gitlab",
        lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Gitlab-Token"}),
        401,
    ),
    (
        "wrong bitbucket signature",
        "bitbucket",
        lambda b, h: (b, {**h, "X-Hub-Signature": "sha256=" + "1" * 64}),
        401,
    ),
    ("unparseable json", "github", lambda b, h: (b"{nope", resign(b"{nope", h, "github")), 400),
    (
        "non-utf8 body",
        "github",
        lambda b, h: (b"\xff\xfe{}", resign(b"\xff\xfe{}", h, "github")),
        400,
    ),
    ("json array", "bitbucket", lambda b, h: (b"[]", resign(b"[]", h, "bitbucket")), 400),
    (
        "missing fields",
        "github",
        lambda b, h: (
            b'{"ref": "refs/heads/master"}',
            resign(b'{"ref": "refs/heads/master"}', h, "github"),
        ),
        400,
    ),
    ("event header says ping", "github", lambda b, h: (b, {**h, "X-GitHub-Event": "ping"}), 400),
    (
        "gitlab event mismatch",
        "gitlab",
        lambda b, h: (b, {**h, "X-Gitlab-Event": "Tag Push Hook"}),
        400,
    ),
    (
        "no event header",
        "bitbucket",
        lambda b, h: (b, {k: v for k, v in h.items() if k != "X-Event-Key"}),
        400,
    ),
    (
        "no delivery id",
        "github",
        lambda b, h: (b, {k: v for k, v in h.items() if k != "X-GitHub-Delivery"}),
        400,
    ),
    (
        "unsupported content type",
        "github",
        lambda b, h: (b, {**h, "Content-Type": "text/plain"}),
        415,
    ),
    ("xml content type", "gitlab", lambda b, h: (b, {**h, "Content-Type": "application/xml"}), 415),
]
SOURCES = {
    "github": "github/push/1",
    "gitlab": "gitlab/push/2",
    "bitbucket": "bitbucket/repo_push/1",
}


@pytest.mark.parametrize("name,provider,mutate,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_requests_get_the_documented_status_and_start_nothing(
    corpus_stack: LocalStack, client: Any, name: str, provider: str, mutate: Any, status: int
) -> None:
    body, headers = mutate(*case(SOURCES[provider]))
    response = client.http.post(f"/webhooks/{provider}", body=body, headers=headers)
    assert response.status_code == status, response.body
    assert response.json_body.get("message") or response.json_body.get("Message")
    assert deploy_count(corpus_stack) == 0
    from chalicelib.bootstrap import container

    table = container().settings.idempotency_table
    import boto3

    assert boto3.client("dynamodb").scan(TableName=table)["Count"] == 0


def test_a_body_over_the_limit_is_413_and_wrong_methods_are_405(
    corpus_stack: LocalStack, api_url: str
) -> None:
    big = b'{"x": "' + b"a" * (5 * 1024 * 1024 + 10) + b'"}'
    _, headers = case("github/push/1")
    response = requests.post(
        f"{api_url}/webhooks/github", data=big, headers=resign(big, headers, "github"), timeout=60
    )
    assert response.status_code == 413 and response.json()["message"]
    for method in ("get", "put", "delete"):
        response = requests.request(method, f"{api_url}/webhooks/github", timeout=30)
        assert response.status_code == 405, (method, response.text)
    assert deploy_count(corpus_stack) == 0


def test_a_branch_with_shell_characters_deploys_nothing(
    corpus_stack: LocalStack, client: Any
) -> None:
    body, headers = case("github/push/1")
    evil = body.replace(b'"refs/heads/master"', b'"refs/heads/master;rm -rf /"')
    response = client.http.post(
        "/webhooks/github", body=evil, headers=resign(evil, headers, "github")
    )
    assert response.status_code == 200
    assert response.json_body["result"] == "ignored"
    assert deploy_count(corpus_stack) == 0


def test_rotated_secrets_both_work_while_both_are_active(
    corpus_stack: LocalStack, client: Any
) -> None:
    import boto3
    from aws_lambda_powertools.utilities import parameters

    from chalicelib.bootstrap import container

    name = container().settings.github_secret_param
    boto3.client("ssm").put_parameter(
        Name=name,
        Type="SecureString",
        Overwrite=True,
        Value=json.dumps(["brand-new-secret", CORPUS_SECRETS["github_webhook_secret"]]),
    )
    parameters.clear_caches()
    body, headers = case("github/ping/1")
    assert client.http.post("/webhooks/github", body=body, headers=headers).status_code == 200
    new = {
        **headers,
        "X-Hub-Signature-256": "sha256="
        + hmac.new(b"brand-new-secret", body, hashlib.sha256).hexdigest(),
    }
    new = with_delivery(new, "github")
    assert client.http.post("/webhooks/github", body=body, headers=new).status_code == 200
    other = {
        **new,
        "X-Hub-Signature-256": "sha256=" + hmac.new(b"retired", body, hashlib.sha256).hexdigest(),
    }
    assert client.http.post("/webhooks/github", body=body, headers=other).status_code == 401


def test_five_copies_of_one_delivery_make_one_deploy(
    corpus_stack: LocalStack, api_url: str
) -> None:
    body, headers = case("github/push/2")
    answers: list[tuple[int, Any]] = []

    def send() -> None:
        r = requests.post(f"{api_url}/webhooks/github", data=body, headers=headers, timeout=60)
        answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {status for status, _ in answers} == {202}
    assert len({a["deploy_id"] for _, a in answers}) == 1
    assert deploy_count(corpus_stack) == 1
    with requests.Session() as s:
        s.headers.update(auth())
        _wait_http(s, api_url, answers[0][1]["deploy_id"])


def test_twenty_concurrent_pushes_of_one_sha_make_one_deploy(
    corpus_stack: LocalStack, api_url: str
) -> None:
    body, headers = case("github/push/2")
    answers: list[tuple[int, Any]] = []

    def send() -> None:
        r = requests.post(
            f"{api_url}/webhooks/github",
            data=body,
            headers=with_delivery(headers, "github"),
            timeout=60,
        )
        answers.append((r.status_code, r.json()))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in answers] == [202] * 20, answers
    assert len({a["deploy_id"] for _, a in answers}) == 1
    assert sum(1 for _, a in answers if not a["deploys"][0]["existing"]) == 1
    assert deploy_count(corpus_stack) == 1
    with requests.Session() as s:
        s.headers.update(auth())
        _wait_http(s, api_url, answers[0][1]["deploy_id"])


def test_the_same_delivery_id_with_another_body_is_refused(
    corpus_stack: LocalStack, client: Any
) -> None:
    body, headers = case("github/ping/1")
    assert client.http.post("/webhooks/github", body=body, headers=headers).status_code == 200
    other, _ = case("github/ping/2")
    response = client.http.post(
        "/webhooks/github", body=other, headers=resign(other, headers, "github")
    )
    assert response.status_code == 409
    assert response.json_body["error"] == "delivery_reused"


def test_a_delivery_recorded_with_a_status_before_outcomes_had_kinds_replays_it(
    corpus_stack: LocalStack, client: Any
) -> None:
    from chalicelib.bootstrap import container

    body, headers = case("github/ping/1")
    headers = with_delivery(headers, "github")
    first = {"provider": "github", "delivery_id": headers["X-GitHub-Delivery"], "result": "x"}
    container().webhooks.deliveries.once(  # the record's old shape: an HTTP status
        f"github:{headers['X-GitHub-Delivery']}",
        hashlib.sha256(body).hexdigest(),
        lambda: {"status": 202, "body": first},
    )
    response = client.http.post("/webhooks/github", body=body, headers=headers)
    assert (response.status_code, response.json_body) == (202, first)
    assert deploy_count(corpus_stack) == 0


def test_red_ci_deploys_nothing_and_says_so(corpus_stack: LocalStack, client: Any) -> None:
    body, headers = case("github/workflow_run/1")
    red = body.replace(b'"conclusion":"success"', b'"conclusion":"failure"')
    assert red != body
    response = client.http.post(
        "/webhooks/github",
        body=red,
        headers=with_delivery(resign(red, headers, "github"), "github"),
    )
    assert response.status_code == 200
    assert (
        "failure" in response.json_body["reason"]
        and "nothing deployed" in response.json_body["reason"]
    )
    assert deploy_count(corpus_stack) == 0


def test_a_push_to_a_ci_gated_branch_waits_for_ci(corpus_stack: LocalStack, client: Any) -> None:
    body, headers = case("github/push/1")
    to_main = body.replace(b'"refs/heads/master"', b'"refs/heads/main"')
    response = client.http.post(
        "/webhooks/github", body=to_main, headers=resign(to_main, headers, "github")
    )
    assert response.status_code == 200
    assert "waits for CI" in response.json_body["reason"]
    assert deploy_count(corpus_stack) == 0


def test_a_burst_of_deliveries_from_many_threads_loses_nothing(
    corpus_stack: LocalStack, api_url: str
) -> None:
    """A few hundred deliveries (new pushes, repeats, pings) from 8 threads: no 5xx, every
    accepted delivery has a durable record, every answered deploy exists."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    from chalicelib.bootstrap import container

    push, push_headers = case("github/push/2")
    ping, ping_headers = case("github/ping/1")
    rng = random.Random(7)
    deliveries: list[tuple[bytes, dict[str, str]]] = []
    for n in range(200):
        kind = n % 5
        if kind < 3:  # a new push of a new SHA
            sha = f"{rng.getrandbits(160):040x}"
            body = json.dumps({**json.loads(push), "after": sha}).encode()
            deliveries.append((body, with_delivery(resign(body, push_headers, "github"), "github")))
        elif kind == 3 and deliveries:  # a redelivery of an earlier one
            deliveries.append(deliveries[rng.randrange(len(deliveries))])
        else:
            deliveries.append((ping, with_delivery(ping_headers, "github")))

    def send(item: tuple[bytes, dict[str, str]]) -> tuple[str, int, dict[str, Any]]:
        body, headers = item
        r = requests.post(f"{api_url}/webhooks/github", data=body, headers=headers, timeout=120)
        return headers["X-GitHub-Delivery"], r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, deliveries))

    statuses = [status for _, status, _ in results]
    assert all(s < 500 for s in statuses), [r for r in results if r[1] >= 500][:3]
    assert set(statuses) <= {200, 202}
    by_delivery: dict[str, set[str]] = {}
    for delivery, _, body in results:
        by_delivery.setdefault(delivery, set()).add(json.dumps(body, sort_keys=True))
    assert all(len(answers) == 1 for answers in by_delivery.values())  # repeats: same answer
    deploy_ids = {b["deploy_id"] for _, s, b in results if s == 202}
    from chalicelib.adapters.dynamo import DeployModel

    stored = {item.deploy_id for item in DeployModel.scan()}
    assert deploy_ids <= stored
    pushes = {d for d, _, b in results if b.get("result") == "deploy"}
    assert len(stored) == len(pushes)  # one record per accepted push, none lost, none extra
    table = container().settings.idempotency_table
    records = boto3.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"]
    assert records == len(by_delivery)
    # let the environment drain before the next test resets the stack
    with requests.Session() as s:
        s.headers.update(auth())
        import time

        deadline = time.monotonic() + 120
        while True:
            env = s.get(f"{api_url}/environments/woodpecker/production", timeout=30).json()
            if not env["running_deploy_id"] and not env["queued_deploy_id"]:
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)


# --- A CI result deploys only the branch's current head --------------------------------------
#
# Pushes are made from github/push/1 (Codertocat/Hello-World) retargeted at main, which the
# corpus config's hello-world/staging deploys only when CI passes; CI results are
# github/check_suite/1 (head_branch main, as delivered, or re-signed after a change) and
# github/workflow_run/1 (octo-org/octo-repo, master: octo-repo/production waits for CI).

SUITE = json.loads((EVENTS / "github/check_suite/1.json").read_text())["check_suite"]
CI_SHA, CI_BEFORE = SUITE["head_sha"], SUITE["before"]
NEWER_SHA = "5" * 40
RUN_SHA = json.loads((EVENTS / "github/workflow_run/1.json").read_text())["workflow_run"][
    "head_sha"
]
PUSHED_AT = 1_700_000_000


def signed(event: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A GitHub delivery of ``payload``: serialised, signed, with a fresh delivery id."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event}
    return body, with_delivery(resign(body, headers, "github"), "github")


def push_payload(
    after: str,
    before: str,
    *,
    pushed_at: int,
    repository: str = "Codertocat/Hello-World",
    ref: str = "refs/heads/main",
) -> dict[str, Any]:
    payload = json.loads((EVENTS / "github/push/1.json").read_text())
    payload.update(ref=ref, after=after, before=before)
    payload["repository"].update(full_name=repository, pushed_at=pushed_at)
    payload["head_commit"]["id"] = after
    return payload


def post(api_url: str, event: str, payload: dict[str, Any]) -> requests.Response:
    body, headers = signed(event, payload)
    return requests.post(f"{api_url}/webhooks/github", data=body, headers=headers, timeout=30)


def push_head(api_url: str, after: str, before: str, pushed_at: int, **where: str) -> None:
    response = post(api_url, "push", push_payload(after, before, pushed_at=pushed_at, **where))
    assert response.status_code == 200, response.text
    assert "waits for CI to pass" in response.json()["reason"], response.json()


def skip_reasons(response: requests.Response) -> list[str]:
    answer = response.json()
    assert response.status_code == 200 and answer["result"] == "ignored", answer
    return [outcome["skipped"] for outcome in answer["environments"]]


def test_ci_for_the_pushed_head_deploys_it(corpus_stack: LocalStack, api_url: str) -> None:
    push_head(api_url, CI_SHA, CI_BEFORE, PUSHED_AT)
    assert deploy_count(corpus_stack) == 0  # the push to a CI-gated branch deploys nothing
    body, headers = case("github/check_suite/1")  # the delivery exactly as GitHub sent it
    response = requests.post(f"{api_url}/webhooks/github", data=body, headers=headers, timeout=30)
    answer = response.json()
    assert response.status_code == 202, answer
    assert [(d["app"], d["environment"]) for d in answer["deploys"]] == [("hello-world", "staging")]
    with requests.Session() as s:
        s.headers.update(auth())
        record = _wait_http(s, api_url, answer["deploy_id"])
    assert record["sha"] == CI_SHA and record["trigger"]["event"] == "ci"
    assert deploy_count(corpus_stack) == 1


def test_ci_for_an_older_commit_finishing_after_a_newer_push_deploys_nothing(
    corpus_stack: LocalStack, api_url: str
) -> None:
    push_head(api_url, CI_SHA, CI_BEFORE, PUSHED_AT)
    push_head(api_url, NEWER_SHA, CI_SHA, PUSHED_AT + 60)
    body, headers = case("github/check_suite/1")  # CI of the older commit, green, last
    response = requests.post(f"{api_url}/webhooks/github", data=body, headers=headers, timeout=30)
    assert skip_reasons(response) == [
        f"CI passed for {CI_SHA[:12]} but the head of main is {NEWER_SHA[:12]}"
    ]
    assert deploy_count(corpus_stack) == 0
    # and CI for the newer head does deploy
    suite = json.loads(body)
    suite["check_suite"].update(head_sha=NEWER_SHA)
    response = post(api_url, "check_suite", suite)
    assert response.status_code == 202, response.text
    with requests.Session() as s:
        s.headers.update(auth())
        _wait_http(s, api_url, response.json()["deploy_id"])


def test_a_late_older_push_does_not_move_the_head_back(
    corpus_stack: LocalStack, api_url: str
) -> None:
    push_head(api_url, NEWER_SHA, CI_SHA, PUSHED_AT + 60)
    late = post(api_url, "push", push_payload(CI_SHA, CI_BEFORE, pushed_at=PUSHED_AT))
    [reason] = skip_reasons(late)
    assert f"a newer push to main ({NEWER_SHA[:12]}) is recorded" in reason
    body, headers = case("github/check_suite/1")
    response = requests.post(f"{api_url}/webhooks/github", data=body, headers=headers, timeout=30)
    assert skip_reasons(response) == [
        f"CI passed for {CI_SHA[:12]} but the head of main is {NEWER_SHA[:12]}"
    ]
    assert deploy_count(corpus_stack) == 0


def test_a_forks_check_suite_for_a_branch_named_main_deploys_nothing(
    corpus_stack: LocalStack, api_url: str
) -> None:
    push_head(api_url, CI_SHA, CI_BEFORE, PUSHED_AT)
    # a fork's pull request listed on the suite, even for the head's own SHA
    suite = json.loads((EVENTS / "github/check_suite/1.json").read_text())
    pulls = json.loads((EVENTS / "github/check_suite/2.json").read_text())["check_suite"][
        "pull_requests"
    ]
    pulls[0]["head"]["repo"]["url"] = "https://api.github.com/repos/mallory/Hello-World"
    suite["check_suite"]["pull_requests"] = pulls
    assert skip_reasons(post(api_url, "check_suite", suite)) == [
        "CI ran for mallory/Hello-World, not Codertocat/Hello-World; nothing deployed"
    ]
    # a fork's suite as GitHub may send it: head_branch "main", no pull requests, the fork's
    # own commit: that SHA is not the head any push to main recorded
    suite = json.loads((EVENTS / "github/check_suite/1.json").read_text())
    suite["check_suite"].update(head_sha="f" * 40, pull_requests=[])
    assert skip_reasons(post(api_url, "check_suite", suite)) == [
        f"CI passed for {'f' * 12} but the head of main is {CI_SHA[:12]}"
    ]
    assert deploy_count(corpus_stack) == 0


@pytest.mark.parametrize("fork", ["mallory/octo-repo", None], ids=["fork", "deleted fork"])
def test_a_forks_workflow_run_deploys_nothing(
    corpus_stack: LocalStack, api_url: str, fork: str | None
) -> None:
    push_head(
        api_url,
        RUN_SHA,
        CI_BEFORE,
        PUSHED_AT,
        repository="octo-org/octo-repo",
        ref="refs/heads/master",
    )
    run = json.loads((EVENTS / "github/workflow_run/1.json").read_text())
    if fork is None:
        run["workflow_run"]["head_repository"] = None
    else:
        run["workflow_run"]["head_repository"]["full_name"] = fork
    [reason] = skip_reasons(post(api_url, "workflow_run", run))
    assert reason.startswith(f"CI ran for {fork or 'a repository it does not name'}")
    assert reason.endswith("not octo-org/octo-repo; nothing deployed")
    assert deploy_count(corpus_stack) == 0


def test_branch_heads_live_in_the_template_table_and_order_pushes_like_the_rule(
    corpus_stack: LocalStack,
) -> None:
    """The DynamoDB condition of BranchHeadRepository.record, against moto, decides every
    case of the unit tests' table as ``services.webhooks.supersedes`` does."""
    from chalicelib.adapters.dynamo import BranchHeadRepository, DeployRepository
    from chalicelib.bootstrap import container
    from tests.unit.services.test_webhooks_ci import ORDER_CASES

    # the repository the composition root wires, on the template's environments table
    heads = container().webhooks.heads
    assert isinstance(heads, BranchHeadRepository)
    for number, (recorded, push, expected) in enumerate(ORDER_CASES):
        key = f"github#parity/case-{number}#main"
        if recorded is not None:
            assert heads.record(
                key,
                sha=recorded.sha,
                before=recorded.before,
                pushed_at=recorded.pushed_at,
                delivery_id="first",
            )
        got = heads.record(
            key, sha=push.sha, before=push.before, pushed_at=push.pushed_at, delivery_id="second"
        )
        assert got is expected, (number, recorded, push)
        assert heads.head(key) == (push.sha if expected or recorded is None else recorded.sha)
    assert heads.head("github#parity/none#main") is None
    # the environments' own scan (the reconciler's) never mistakes a head for an environment
    assert DeployRepository().locked_environments() == []


def test_the_api_function_may_make_exactly_the_calls_branch_heads_need(
    corpus_stack: LocalStack, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every AWS call the API handler makes for a push and a CI result (through the Chalice
    app, in this thread) is allowed by its role in the packaged template, DynamoDB calls on
    the very table's ARN."""
    import botocore.client

    from chalicelib.bootstrap import container
    from tests.functional.test_boot_template import TRANSACT_ITEMS

    made: list[tuple[str, str]] = []
    original = botocore.client.BaseClient._make_api_call
    api_thread = threading.get_ident()  # the test client runs the app here; rollouts do not

    def record(self: Any, operation: str, params: Any) -> Any:
        if threading.get_ident() == api_thread:
            model = self.meta.service_model
            service = model.metadata.get("signingName") or model.endpoint_prefix
            if operation == "TransactWriteItems":  # IAM authorises each item's own action
                made.extend(
                    (f"dynamodb:{TRANSACT_ITEMS[kind]}", item[kind]["TableName"])
                    for item in params["TransactItems"]
                    for kind in item
                )
            else:
                made.append((f"{service}:{operation}", params.get("TableName", "")))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    answers = []
    for event, payload in (
        ("push", push_payload(CI_SHA, CI_BEFORE, pushed_at=PUSHED_AT)),
        ("push", push_payload("6" * 40, CI_BEFORE, pushed_at=PUSHED_AT - 1)),  # late: GetItem
        ("check_suite", json.loads((EVENTS / "github/check_suite/1.json").read_text())),
    ):
        body, headers = signed(event, payload)
        response = client.http.post("/webhooks/github", body=body, headers=headers)
        answers.append((response.status_code, response.json_body))
    monkeypatch.undo()
    assert [status for status, _ in answers] == [200, 200, 202], answers
    assert "a newer push to main" in answers[1][1]["reason"]
    wait_for(client, answers[2][1]["deploy_id"])
    environments = container().settings.environments_table
    heads = {action for action, table in made if table == environments}
    assert {"dynamodb:UpdateItem", "dynamodb:GetItem"} <= heads

    template = corpus_stack.package.load_template()
    role = template["Resources"]["APIHandler"]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        statement
        for policy in template["Resources"][role]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]

    def listed(value: Any) -> list[Any]:
        return value if isinstance(value, list) else [value]

    def allows(action: str, table: str) -> bool:
        for statement in statements:
            if not any(
                fnmatch.fnmatchcase(action.lower(), a.lower()) for a in listed(statement["Action"])
            ):
                continue
            if not table:
                return True
            resources = [r.get("Fn::Sub", "") for r in listed(statement["Resource"])]
            if any(r.endswith(f":table/{table}") for r in resources):
                return True
        return False

    refused = sorted({(a, t) for a, t in made if not allows(a, t)})
    assert refused == [], f"the API handler's role does not allow {refused}"
