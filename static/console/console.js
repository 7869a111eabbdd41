// The operator's console. Plain DOM, no framework: every value a user typed
// (names, emails, extra fields) reaches the page as a text node, never as HTML.

const main = document.getElementById("main");
const toast = document.getElementById("toast");
const signOutButton = document.getElementById("sign-out");
let csrf = "";

/** An element: attributes from `attrs`, children as nodes or text. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/console${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, answer?.error?.message ?? `the server answered ${response.status}`);
  return answer;
}

function say(text, kind = "ok") {
  toast.textContent = text;
  toast.className = `show ${kind}`;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => (toast.className = ""), 4000);
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return el("time", { datetime: iso, title: iso }, date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
}

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function duration(secs) {
  if (secs === null || secs === undefined) return "—";
  const d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60);
  return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min`;
}

/** Asks for a typed confirmation in a modal dialog; resolves true when confirmed. */
function confirmTyped({ title, explain, expected, action }) {
  return new Promise((resolve) => {
    const input = el("input", { type: "text", autocomplete: "off", spellcheck: "false", "aria-label": `Type ${expected} to confirm` });
    const button = el("button", { type: "submit", class: "danger", disabled: true }, action);
    input.addEventListener("input", () => (button.disabled = input.value.trim() !== expected));
    const dialog = el(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title" },
      el(
        "form",
        { method: "dialog" },
        el("h2", { id: "confirm-title" }, title),
        el("p", {}, explain),
        el("label", {}, "Type ", el("code", {}, expected), " to confirm", input),
        el("div", { class: "actions" }, el("button", { type: "button", class: "quiet", onclick: () => dialog.close("cancel") }, "Cancel"), button),
      ),
    );
    dialog.addEventListener("close", () => {
      const confirmed = dialog.returnValue !== "cancel" && input.value.trim() === expected;
      dialog.remove();
      resolve(confirmed);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

function keyTimeline(keys) {
  if (!keys.length) return el("p", { class: "muted" }, "No keys.");
  return el(
    "ol",
    { class: "timeline", "aria-label": "Signing keys" },
    keys.map((key) =>
      el(
        "li",
        { class: `key ${key.state}`, "data-kid": key.kid },
        el("span", { class: `badge ${key.state}` }, key.state),
        el("code", { class: "kid" }, key.kid),
        el(
          "dl",
          {},
          el("dt", {}, "created"), el("dd", {}, when(key.createdAt)),
          el("dt", {}, "signs from"), el("dd", {}, when(key.signsFrom)),
          key.retiresAt && [el("dt", {}, "retires"), el("dd", {}, when(key.retiresAt))],
          key.unpublishAt && [el("dt", {}, "leaves the JWKS"), el("dd", {}, when(key.unpublishAt))],
        ),
      ),
    ),
  );
}

/** The audit log's events as a table (newest first). */
function eventTable(events, withUser = true) {
  if (!events.length) return el("p", { class: "muted" }, "No events.");
  return el(
    "table",
    { class: "events" },
    el("thead", {}, el("tr", {}, el("th", {}, "when"), el("th", {}, "event"), withUser && el("th", {}, "user"), el("th", {}, "by"))),
    el(
      "tbody",
      {},
      events.map((e) =>
        el(
          "tr",
          { "data-event": e.type },
          el("td", {}, when(e.at)),
          el("td", {}, el("code", {}, e.type), e.sid && el("div", { class: "muted small" }, "session ", el("code", {}, e.sid)), e.detail && el("div", { class: "muted small" }, e.detail)),
          withUser && el("td", {}, e.userId ? el("a", { href: `#/users/${encodeURIComponent(e.userId)}` }, el("code", {}, e.userId)) : "—"),
          el("td", {}, e.actor ? ["console ", el("code", {}, e.actor)] : "the app"),
        ),
      ),
    ),
  );
}

// --- Pages ---------------------------------------------------------------------

async function overviewPage() {
  const o = await api("GET", "/overview");
  const figure = (label, value) => el("div", { class: "figure" }, el("span", { class: "value" }, value), el("span", { class: "label" }, label));
  return [
    el("h1", {}, "Overview"),
    el(
      "section",
      { class: "figures", "aria-label": "Figures" },
      figure("users", o.users.toLocaleString()),
      figure("live sessions", o.liveSessions.toLocaleString()),
      figure("passkeys", o.passkeys.toLocaleString()),
      figure("pending sign-in links", o.pendingVerificationTokens.toLocaleString()),
      figure("database", bytes(o.databaseBytes)),
      o.walBytes !== null && figure("write-ahead log", bytes(o.walBytes)),
    ),
    el(
      "section",
      {},
      el("h2", {}, "Accounts by provider"),
      o.accountsByProvider.length
        ? el("table", {}, el("tbody", {}, o.accountsByProvider.map((p) => el("tr", {}, el("th", {}, p.provider), el("td", {}, p.count.toLocaleString())))))
        : el("p", { class: "muted" }, "No linked accounts."),
    ),
    el("section", {}, el("h2", {}, "Signing keys"), keyTimeline(o.keys)),
    el("p", { class: "muted small" }, `authstore ${o.version} · up ${duration(o.uptimeSecs)}`),
  ];
}

async function usersPage(params) {
  const by = params.get("by") ?? "email";
  const q = params.get("q") ?? "";
  const after = params.get("after");
  const query = new URLSearchParams({ by, q });
  if (after) query.set("after", after);
  const page = await api("GET", `/users?${query}`);
  const search = el(
    "form",
    {
      class: "search",
      role: "search",
      onsubmit: (event) => {
        event.preventDefault();
        const form = new FormData(event.target);
        location.hash = `#/users?${new URLSearchParams({ by: form.get("by"), q: form.get("q") })}`;
      },
    },
    el(
      "select",
      { name: "by", "aria-label": "Search by" },
      ["email", "name", "id"].map((field) => el("option", { value: field, selected: field === by }, field)),
    ),
    el("input", { type: "search", name: "q", value: q, placeholder: "starts with…", "aria-label": "Search users" }),
    el("button", { type: "submit" }, "Search"),
  );
  const rows = page.users.map((user) =>
    el(
      "tr",
      {},
      el("td", {}, el("a", { href: `#/users/${encodeURIComponent(user.id)}` }, user.email ?? "(no email)")),
      el("td", { class: "name" }, user.name ?? ""),
      el("td", {}, el("code", {}, user.id)),
    ),
  );
  const next = page.next
    ? el("a", { class: "button quiet", href: `#/users?${new URLSearchParams({ by, q, after: page.next })}` }, "Next page →")
    : null;
  return [
    el("h1", {}, "Users"),
    search,
    rows.length
      ? el("table", { class: "users" }, el("thead", {}, el("tr", {}, el("th", {}, "email"), el("th", {}, "name"), el("th", {}, "id"))), el("tbody", {}, rows))
      : el("p", { class: "muted" }, "No user matches."),
    el("nav", { class: "pages", "aria-label": "Pages" }, after && el("a", { class: "button quiet", href: `#/users?${new URLSearchParams({ by, q })}` }, "← First page"), next),
  ];
}

async function userPage(id) {
  const detail = await api("GET", `/users/${encodeURIComponent(id)}`);
  const { events } = await api("GET", `/events?${new URLSearchParams({ user: id })}`);
  const { user } = detail;
  const reload = () => route();
  const act = async (what, done) => {
    try {
      await what();
      say(done);
      reload();
    } catch (error) {
      say(error.message, "error");
    }
  };
  const profile = [
    ["id", el("code", {}, user.id)],
    ["email", user.email ?? "—"],
    ["name", user.name ?? "—"],
    ["email verified", when(user.emailVerified)],
    ["image", user.image ?? "—"],
  ];
  if (user.extra) for (const [name, value] of Object.entries(user.extra)) profile.push([name, typeof value === "string" ? value : JSON.stringify(value)]);
  return [
    el("p", {}, el("a", { href: "#/users" }, "← Users")),
    el("h1", { class: "user-title" }, user.name || user.email || user.id),
    el("section", {}, el("h2", {}, "Profile"), el("table", { class: "profile" }, el("tbody", {}, profile.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", {}, v)))))),
    el(
      "section",
      {},
      el("h2", {}, "Linked accounts"),
      detail.accounts.length
        ? el(
            "table",
            { class: "accounts" },
            el(
              "tbody",
              {},
              detail.accounts.map((a) =>
                el(
                  "tr",
                  { "data-account": `${a.provider}/${a.providerAccountId}` },
                  el("th", {}, a.provider),
                  el("td", {}, el("code", {}, a.providerAccountId)),
                  el("td", { class: "muted" }, a.type),
                  el(
                    "td",
                    {},
                    // A passkey's account goes with its passkey (Remove, below).
                    a.type !== "webauthn" &&
                      el(
                        "button",
                        {
                          type: "button",
                          class: "small",
                          onclick: () =>
                            act(
                              () =>
                                api(
                                  "DELETE",
                                  `/users/${encodeURIComponent(user.id)}/accounts/${encodeURIComponent(a.provider)}/${encodeURIComponent(a.providerAccountId)}`,
                                ),
                              "Account unlinked",
                            ),
                        },
                        "Unlink",
                      ),
                  ),
                ),
              ),
            ),
          )
        : el("p", { class: "muted" }, "None."),
    ),
    el(
      "section",
      { "aria-label": "Sessions" },
      el(
        "h2",
        {},
        "Live sessions ",
        detail.sessions.length > 0 &&
          el(
            "button",
            {
              type: "button",
              class: "danger small",
              onclick: () => act(() => api("DELETE", `/users/${encodeURIComponent(user.id)}/sessions`), "Every session revoked"),
            },
            "Revoke all",
          ),
      ),
      detail.sessions.length
        ? el(
            "table",
            { class: "sessions" },
            el(
              "tbody",
              {},
              detail.sessions.map((s) =>
                el(
                  "tr",
                  { "data-session": s.id },
                  el("td", {}, el("code", {}, s.id)),
                  el("td", { class: "device" }, s.userAgent || "unknown device"),
                  el("td", { class: "address" }, s.ip || "no address"),
                  el("td", {}, s.createdAt ? ["created ", when(s.createdAt)] : "created before this was kept"),
                  el("td", {}, s.lastSeenAt ? ["last seen ", when(s.lastSeenAt)] : ""),
                  el("td", {}, "expires ", when(s.expires)),
                  el(
                    "td",
                    {},
                    el(
                      "button",
                      {
                        type: "button",
                        class: "small",
                        onclick: () => act(() => api("DELETE", `/users/${encodeURIComponent(user.id)}/sessions/${s.id}`), "Session revoked"),
                      },
                      "Revoke",
                    ),
                  ),
                ),
              ),
            ),
          )
        : el("p", { class: "muted" }, "None."),
    ),
    el(
      "section",
      { "aria-label": "Passkeys" },
      el("h2", {}, "Passkeys"),
      detail.passkeys.length
        ? el(
            "table",
            { class: "passkeys" },
            el(
              "tbody",
              {},
              detail.passkeys.map((p) =>
                el(
                  "tr",
                  { "data-passkey": p.credentialID },
                  el("td", {}, el("code", {}, p.credentialID)),
                  el("td", { class: "muted" }, `${p.deviceType}${p.backedUp ? ", backed up" : ""}${p.transports ? ` · ${p.transports}` : ""}`),
                  el(
                    "td",
                    {},
                    el(
                      "button",
                      {
                        type: "button",
                        class: "small",
                        onclick: () =>
                          act(() => api("DELETE", `/users/${encodeURIComponent(user.id)}/passkeys/${encodeURIComponent(p.credentialID)}`), "Passkey removed"),
                      },
                      "Remove",
                    ),
                  ),
                ),
              ),
            ),
          )
        : el("p", { class: "muted" }, "None."),
    ),
    el("section", { "aria-label": "Events" }, el("h2", {}, "Recent events"), eventTable(events.slice(0, 10), false)),
    el(
      "section",
      { class: "danger-zone" },
      el("h2", {}, "Delete this user"),
      el("p", {}, "Deletes the user with every account, session and passkey. It cannot be undone."),
      el(
        "button",
        {
          type: "button",
          class: "danger",
          onclick: async () => {
            const expected = user.email ?? user.id;
            const confirmed = await confirmTyped({
              title: "Delete this user?",
              explain: "The user, their linked accounts, sessions and passkeys are deleted at once; they are signed out everywhere.",
              expected,
              action: "Delete user",
            });
            if (!confirmed) return;
            try {
              await api("DELETE", `/users/${encodeURIComponent(user.id)}`, { confirm: expected });
              say("User deleted");
              location.hash = "#/users";
            } catch (error) {
              say(error.message, "error");
            }
          },
        },
        "Delete user…",
      ),
    ),
  ];
}

async function auditPage(params) {
  const type = params.get("type") ?? "";
  const { events } = await api("GET", `/events?${new URLSearchParams({ type })}`);
  const types = ["", "session.deleted", "session.expired", "user.sessions_revoked", "user.deleted", "account.unlinked"];
  return [
    el("h1", {}, "Audit log"),
    el("p", { class: "muted" }, "Every change that ended someone's access, newest first; kept 30 days. The same as ", el("code", {}, "authstore audit"), "."),
    el(
      "form",
      { class: "search", onsubmit: (event) => event.preventDefault() },
      el(
        "select",
        {
          name: "type",
          "aria-label": "Event type",
          onchange: (event) => (location.hash = `#/audit?${new URLSearchParams({ type: event.target.value })}`),
        },
        types.map((t) => el("option", { value: t, selected: t === type }, t || "every type")),
      ),
    ),
    eventTable(events),
  ];
}

async function keysPage() {
  const { keys } = await api("GET", "/keys");
  const rotate = async (now) => {
    if (now) {
      const confirmed = await confirmTyped({
        title: "Rotate now?",
        explain:
          "A new key signs from this moment. Verifiers that cached the JWKS before it was published (Convex caches it) reject the new tokens until they fetch it again: sessions may fail for up to the JWKS cache time. Prefer a scheduled rotation.",
        expected: "rotate now",
        action: "Rotate now",
      });
      if (!confirmed) return;
    }
    try {
      await api("POST", "/keys/rotate", now ? { now: true, confirm: "rotate now" } : { now: false });
      say(now ? "A new key signs now" : "A new key is published and signs after the lead time");
      route();
    } catch (error) {
      say(error.message, "error");
    }
  };
  return [
    el("h1", {}, "Signing keys"),
    el("p", { class: "muted" }, "A new key is published first (next), signs after the lead time (current), then stays in the JWKS while tokens it signed may live (retired)."),
    keyTimeline(keys),
    el(
      "div",
      { class: "actions" },
      el("button", { type: "button", onclick: () => rotate(false) }, "Schedule a rotation"),
      el("button", { type: "button", class: "danger", onclick: () => rotate(true) }, "Rotate now…"),
    ),
  ];
}

function signedOut(text) {
  signOutButton.hidden = true;
  main.replaceChildren(
    el("h1", {}, "Signed out"),
    el("p", {}, text),
    el("p", {}, "Run ", el("code", {}, "authstore console-link"), " where the database is, and open the link it prints."),
  );
}

/** Counts navigations: a page whose data arrives after a newer navigation is dropped. */
let navigation = 0;

async function route() {
  const mine = ++navigation;
  const hash = location.hash.slice(1) || "/overview";
  const [path, search = ""] = hash.split("?");
  const params = new URLSearchParams(search);
  const section = path.split("/")[1];
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    let content;
    if (path === "/overview") content = await overviewPage();
    else if (path === "/users") content = await usersPage(params);
    else if (path.startsWith("/users/")) content = await userPage(decodeURIComponent(path.slice("/users/".length)));
    else if (path === "/keys") content = await keysPage();
    else if (path === "/audit") content = await auditPage(params);
    else content = [el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/overview" }, "Overview"))];
    if (mine !== navigation) return;
    main.replaceChildren(...[content].flat());
    document.title = `${main.querySelector("h1")?.textContent ?? "Console"} · authstore`;
  } catch (error) {
    if (mine !== navigation) return;
    if (error instanceof ApiError && error.status === 401) signedOut("Your console session has ended.");
    else main.replaceChildren(el("h1", {}, "Something went wrong"), el("p", { class: "error" }, error.message));
  }
}

signOutButton.addEventListener("click", async () => {
  try {
    await api("POST", "/sign-out");
  } finally {
    signedOut("You signed out of the console.");
  }
});

try {
  ({ csrf } = await api("GET", "/session"));
  signOutButton.hidden = false;
  addEventListener("hashchange", route);
  await route();
} catch (error) {
  if (error instanceof ApiError && error.status === 401) signedOut("You are not signed in to the console.");
  else main.replaceChildren(el("h1", {}, "The console cannot reach authstore"), el("p", { class: "error" }, error.message));
}
