// The bench's baseline: the least a /notify can do on this runtime (KV get, D1 insert,
// queue send), the least a /github can do (HMAC check, parse, one D1 row keyed by the
// delivery id and the body's hash) and the least the consumer can do (one Telegram
// sendMessage per message, nothing recorded). `npm run bench` runs it beside
// edge-notifier, under the same load and with the same consumer settings, so the
// figures can be read against what the machine allows.
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");

async function github(req, env) {
  const body = await req.arrayBuffer();
  const sig = /^sha256=([0-9a-f]{64})$/.exec(req.headers.get("x-hub-signature-256") ?? "")?.[1];
  const key = await crypto.subtle.importKey(
    "raw", new TextEncoder().encode(env.GITHUB_WEBHOOK_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["verify"],
  );
  const mac = sig && Uint8Array.from(sig.match(/../g), (h) => parseInt(h, 16));
  if (!mac || !(await crypto.subtle.verify("HMAC", key, mac, body))) {
    return Response.json({ success: false, error: "signature does not match" }, { status: 401 });
  }
  const event = req.headers.get("x-github-event");
  JSON.parse(new TextDecoder().decode(body));
  const digest = hex(await crypto.subtle.digest("SHA-256", body));
  const r = await env.DB.prepare("INSERT INTO deliveries (id, event, body_sha256) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
    .bind(req.headers.get("x-github-delivery"), event, digest).run();
  if (r.meta.changes === 0) return Response.json({ success: true, message: "Already processed" });
  return Response.json({ success: true, message: event === "ping" ? "pong" : "Ignored" }, { status: event === "ping" ? 200 : 202 });
}

export default {
  async fetch(req, env) {
    if (req.method !== "POST") return Response.json({ success: true });
    if (new URL(req.url).pathname === "/github") return github(req, env);
    const body = await req.json();
    const key = `${body.deployment.type}:${body.deployment.projectName}:${body.deployment.deploymentId}`;
    if (await env.STATE.get(key)) return Response.json({ success: true, message: "Already processed" });
    const r = await env.DB.prepare("INSERT INTO seen (key) VALUES (?1) ON CONFLICT DO NOTHING").bind(key).run();
    if (r.meta.changes === 0) return Response.json({ success: true, message: "Already processed" });
    await env.JOBS.send({ id: body.deployment.deploymentId });
    return Response.json({ success: true, message: "Notification queued" }, { status: 202 });
  },
  async queue(batch, env) {
    await Promise.all(batch.messages.map(async (m) => {
      const r = await fetch(`${env.TELEGRAM_API_BASE}/bot${env.TELEGRAM_BOT_TOKEN}/sendMessage`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          chat_id: env.TELEGRAM_CHAT_ID, parse_mode: "HTML",
          text: `<b>Deployment ID:</b> <code>${m.body.id}</code>`,
        }),
      });
      await r.arrayBuffer();
    }));
    batch.ackAll();
  },
};
