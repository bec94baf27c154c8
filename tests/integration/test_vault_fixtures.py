"""tests/vault_setup.py's helpers do what the secrets tests rely on, against a real OpenBao
server (hvac straight to it, no mlsteps code). Each test uses mounts and roles of its own on
the session's shared server; the sealing test has a server of its own."""

from __future__ import annotations

import time

import hvac
import pytest
import requests

from tests import services
from tests import vault_setup as vs

pytestmark = pytest.mark.services

REPOSITORY = "mlsteps/demo"
MAIN = "refs/heads/main"


def test_dev_server_answers_health_and_has_kv2_at_secret(
    vault_server: services.VaultServer,
) -> None:
    assert services.vault_health(vault_server.addr) == 200
    assert vs.kv_version(vault_server, "secret") == 2


def test_kv_v1_and_v2_reads_with_a_pinned_version(vault_server: services.VaultServer) -> None:
    v1 = vs.mount_kv(vault_server, "fx-kv1", version=1)
    v2 = vs.mount_kv(vault_server, "fx-kv2", version=2)
    assert vs.put_kv(vault_server, v1, "app/db", {"password": "one"}) is None
    written = [vs.put_kv(vault_server, v2, "app/db", {"password": p}) for p in ("a", "b", "c")]
    assert written == [1, 2, 3]

    kv = vs.client(vault_server).secrets.kv
    assert kv.v1.read_secret("app/db", mount_point=v1)["data"] == {"password": "one"}
    latest = kv.v2.read_secret_version("app/db", mount_point=v2, raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"password": "c"}
    pinned = kv.v2.read_secret_version(
        "app/db", version=2, mount_point=v2, raise_on_deleted_version=True
    )
    assert pinned["data"]["data"] == {"password": "b"}
    assert pinned["data"]["metadata"]["version"] == 2
    # A missing path and a version never written are both a bare 404, {"errors": []}.
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.v2.read_secret_version(
            "app/db", version=9, mount_point=v2, raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.v1.read_secret("app/none", mount_point=v1)


def test_policy_limits_a_token_and_revoking_ends_it(vault_server: services.VaultServer) -> None:
    mount = vs.mount_kv(vault_server, "fx-policy", version=2)
    vs.put_kv(vault_server, mount, "allowed/x", {"k": "v"})
    vs.put_kv(vault_server, mount, "denied/x", {"k": "v"})
    vs.read_policy(vault_server, "fx-read-allowed", [f"{mount}/data/allowed/*"])
    token = vs.token_with_policies(vault_server, ["fx-read-allowed"], ttl="5m")

    kv = vs.client(vault_server, token).secrets.kv.v2
    assert kv.read_secret_version("allowed/x", mount_point=mount, raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
        kv.read_secret_version("denied/x", mount_point=mount, raise_on_deleted_version=True)

    assert vs.token_works(vault_server, token)
    vs.revoke_token(vault_server, token)
    assert not vs.token_works(vault_server, token)
    assert not vs.token_works(vault_server, "not-a-token")


def test_approle_login_with_plain_and_wrapped_secret_id(
    vault_server: services.VaultServer,
) -> None:
    role_id, secret_id = vs.approle(vault_server, "fx-app", ["default"], mount="fx-approle")
    anonymous = hvac.Client(url=vault_server.addr)
    login = anonymous.auth.approle.login(role_id, secret_id, mount_point="fx-approle")
    assert vs.token_works(vault_server, login["auth"]["client_token"])
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        anonymous.auth.approle.login(role_id, "wrong", mount_point="fx-approle")

    wrap_token = vs.wrapped_secret_id(vault_server, "fx-app", ttl="60s", mount="fx-approle")
    unwrapped = vs.client(vault_server, wrap_token).sys.unwrap()["data"]["secret_id"]
    login = anonymous.auth.approle.login(role_id, unwrapped, mount_point="fx-approle")
    assert vs.token_works(vault_server, login["auth"]["client_token"])
    # A wrapping token unwraps once.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="wrapping token is not valid"):
        vs.client(vault_server, wrap_token).sys.unwrap()


def test_jwt_login_takes_the_bound_claims_and_refuses_others(
    vault_server: services.VaultServer,
) -> None:
    issuer = vs.JwtIssuer()
    mount = issuer.configure(
        vault_server,
        mount="fx-jwt",
        role="deploy",
        bound_claims={"repository": REPOSITORY, "ref": MAIN},
        audience="fx-audience",
    )
    jwt = hvac.Client(url=vault_server.addr).auth.jwt
    good = issuer.sign(issuer.github_claims(REPOSITORY, MAIN, "fx-audience"))
    login = jwt.jwt_login("deploy", good, path=mount, use_token=False)
    assert vs.token_works(vault_server, login["auth"]["client_token"])

    aud = "fx-audience"
    refused = {
        'claim "repository" does not match': issuer.github_claims("mlsteps/other", MAIN, aud),
        'claim "ref" does not match': issuer.github_claims(REPOSITORY, "refs/heads/dev", aud),
        "invalid audience": issuer.github_claims(REPOSITORY, MAIN, "elsewhere"),
        "token is expired": issuer.github_claims(REPOSITORY, MAIN, aud, exp=int(time.time()) - 600),
    }
    for reason, claims in refused.items():
        with pytest.raises(hvac.exceptions.InvalidRequest, match=reason):
            jwt.jwt_login("deploy", issuer.sign(claims), path=mount, use_token=False)
    stranger = vs.JwtIssuer().sign(issuer.github_claims(REPOSITORY, MAIN, "fx-audience"))
    with pytest.raises(hvac.exceptions.InvalidRequest, match="no known key"):
        jwt.jwt_login("deploy", stranger, path=mount, use_token=False)


def test_github_oidc_endpoint_hands_out_a_token_that_logs_in(
    vault_server: services.VaultServer,
) -> None:
    issuer = vs.JwtIssuer()
    mount = issuer.configure(
        vault_server,
        mount="fx-github",
        role="ci",
        bound_claims={"repository": REPOSITORY, "ref": MAIN},
        audience="fx-vault",
    )
    with vs.GitHubOidcEndpoint(issuer, repository=REPOSITORY, ref=MAIN) as oidc:
        env = oidc.env()
        url = env["ACTIONS_ID_TOKEN_REQUEST_URL"]
        auth = {"Authorization": f"bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"}
        answer = requests.get(f"{url}&audience=fx-vault", headers=auth, timeout=10)
        assert answer.status_code == 200
        token = answer.json()["value"]
        assert oidc.audiences == ["fx-vault"]

        wrong = requests.get(
            f"{url}&audience=fx-vault", headers={"Authorization": "bearer x"}, timeout=10
        )
        assert wrong.status_code == 401
        assert oidc.refused == 1

        # Without an audience GitHub's default is the owner's URL, which this role refuses.
        default = requests.get(url, headers=auth, timeout=10).json()["value"]
        assert oidc.audiences[-1] is None

    jwt = hvac.Client(url=vault_server.addr).auth.jwt
    login = jwt.jwt_login("ci", token, path=mount, use_token=False)
    assert login["auth"]["metadata"]["role"] == "ci"
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid audience"):
        jwt.jwt_login("ci", default, path=mount, use_token=False)


def test_kubernetes_login_through_the_token_review_server(
    vault_server: services.VaultServer,
) -> None:
    with vs.TokenReviewServer() as cluster:
        mount = vs.configure_kubernetes_auth(
            vault_server, cluster, "trainer", "ml", "trainer-sa", ["default"], mount="fx-k8s"
        )
        kubernetes = hvac.Client(url=vault_server.addr).auth.kubernetes
        sa_token = cluster.service_account_token("ml", "trainer-sa")
        login = kubernetes.login("trainer", sa_token, mount_point=mount, use_token=False)
        meta = login["auth"]["metadata"]
        assert (meta["service_account_namespace"], meta["service_account_name"]) == (
            "ml",
            "trainer-sa",
        )
        assert [r["token"] for r in cluster.reviews] == [sa_token]

        other = cluster.service_account_token("ml", "someone-else")
        with pytest.raises(hvac.exceptions.Forbidden, match="service account name not authorized"):
            kubernetes.login("trainer", other, mount_point=mount, use_token=False)
        cluster.revoke(sa_token)
        with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
            kubernetes.login("trainer", sa_token, mount_point=mount, use_token=False)


def test_dynamic_read_gives_a_lease_that_revoking_removes(
    vault_server: services.VaultServer, redis_server: services.RedisServer
) -> None:
    path = vs.dynamic_creds_role(vault_server, redis_server, role="fx-reader", mount="fx-db")
    answer = requests.get(
        f"{vault_server.addr}/v1/{path}",
        headers={"X-Vault-Token": vault_server.root_token},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    creds = answer.json()
    lease_id, user = creds["lease_id"], creds["data"]["username"]
    assert lease_id.startswith(f"{path}/") and creds["lease_duration"] > 0
    assert vs.lease_exists(vault_server, lease_id)
    assert user in redis_server.acl_users()

    revoked = requests.put(
        f"{vault_server.addr}/v1/sys/leases/revoke",
        headers={"X-Vault-Token": vault_server.root_token},
        json={"lease_id": lease_id},
        timeout=10,
    )
    assert revoked.status_code == 204
    assert not vs.lease_exists(vault_server, lease_id)
    assert user not in redis_server.acl_users()


def test_a_sealed_server_answers_503(fresh_vault: services.VaultServer) -> None:
    vs.put_kv(fresh_vault, "secret", "app", {"k": "v"})
    vs.seal(fresh_vault)
    assert services.vault_health(fresh_vault.addr) == 503
    with pytest.raises(hvac.exceptions.VaultDown, match="Vault is sealed"):
        vs.client(fresh_vault).secrets.kv.v2.read_secret_version(
            "app", raise_on_deleted_version=True
        )


def test_nothing_listens_at_an_unused_address() -> None:
    down = vs.unused_address()
    assert services.vault_health(down) is None
    with pytest.raises(requests.ConnectionError):
        hvac.Client(url=down, token="root").sys.read_health_status(method="GET")
