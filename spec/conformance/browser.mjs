// A small browser over AuthHero's Hono app (app.request): a cookie jar, manual redirects, form
// fields read from the server-rendered pages, and a timeout on every request. It knows HTTP and
// HTML forms, nothing about AuthHero's flows.

const USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) authhero-aws-conformance";

export class Browser {
    // app: the Hono app; env: the bindings (a fresh copy is passed on every request, as each
    // request of a real runtime gets its own); origin: "http://localhost:3000".
    constructor({ app, env, origin, timeoutMs = 20000 }) {
        this.app = app;
        this.env = env;
        this.origin = origin;
        this.timeoutMs = timeoutMs;
        this.jar = new Map();
    }

    cookieHeader() {
        return [...this.jar].map(([k, v]) => `${k}=${v}`).join("; ");
    }

    keepCookies(res) {
        const lines = typeof res.headers.getSetCookie === "function" ? res.headers.getSetCookie() : [];
        for (const line of lines) {
            const [pair, ...attrs] = line.split(";");
            const eq = pair.indexOf("=");
            if (eq < 0) continue;
            const name = pair.slice(0, eq).trim(), value = pair.slice(eq + 1).trim();
            const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) ||
                attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split("=").slice(1).join("=")) < Date.now());
            if (expired || value === "") this.jar.delete(name);
            else this.jar.set(name, value);
        }
    }

    // request(method, pathOrUrl, { form, json, headers }) -> { status, location, text, json, headers }
    // Every request carries what a browser and a reverse proxy would add: a user agent and the
    // client's address (AuthHero stores both on sessions and refresh tokens).
    async request(method, target, { form, json, headers = {} } = {}) {
        const url = new URL(target, this.origin).toString();
        const h = { "user-agent": USER_AGENT, "x-real-ip": "127.0.0.1", ...headers };
        const cookies = this.cookieHeader();
        if (cookies) h.cookie = cookies;
        let body;
        if (form) {
            body = new URLSearchParams(form).toString();
            h["content-type"] = "application/x-www-form-urlencoded";
        } else if (json !== undefined) {
            body = JSON.stringify(json);
            h["content-type"] = "application/json";
        }
        let timer;
        const timeout = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${method} ${url}: no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
        });
        try {
            const res = await Promise.race([
                this.app.request(url, { method, headers: h, body, redirect: "manual" }, { ...this.env }),
                timeout,
            ]);
            this.keepCookies(res);
            const text = await Promise.race([res.text(), timeout]);
            let parsed;
            try {
                parsed = JSON.parse(text);
            } catch {
                parsed = undefined;
            }
            const location = res.headers.get("location");
            return { status: res.status, location: location ? new URL(location, url).toString() : null,
                text, json: parsed, headers: res.headers, url };
        } finally {
            clearTimeout(timer);
        }
    }
}

// The first <form> of a page: { action, method, fields } with the values of its inputs (hidden ones
// included), resolved against the page's URL.
export function readForm(html, pageUrl) {
    const m = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
    if (!m) return null;
    const attr = (tag, name) => {
        const r = new RegExp(`\\b${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, "i").exec(tag);
        return r ? decode(r[2] ?? r[3] ?? r[4] ?? "") : undefined;
    };
    const fields = {};
    for (const input of m[2].matchAll(/<input\b[^>]*>/gi)) {
        const name = attr(input[0], "name");
        if (!name) continue;
        const type = (attr(input[0], "type") ?? "text").toLowerCase();
        if ((type === "checkbox" || type === "radio") && !/\bchecked\b/i.test(input[0])) continue;
        fields[name] = attr(input[0], "value") ?? "";
    }
    const action = attr(m[1], "action");
    return {
        action: new URL(action && action !== "" ? action : pageUrl, pageUrl).toString(),
        method: (attr(m[1], "method") ?? "GET").toUpperCase(),
        fields,
    };
}

function decode(s) {
    return s.replace(/&amp;/g, "&").replace(/&quot;/g, "\"").replace(/&#39;/g, "'").replace(/&#x2F;/g, "/")
        .replace(/&lt;/g, "<").replace(/&gt;/g, ">");
}
