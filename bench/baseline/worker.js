// The bench's baseline: the least a /notify can do on this runtime (KV get, D1 insert,
// queue send) and the least its consumer can do (one Telegram sendMessage per message,
// nothing recorded). `npm run bench` runs it beside edge-notifier, under the same load
// and with the same consumer settings, so the figures can be read against what the
// machine allows.
export default {
  async fetch(req, env) {
    if (req.method !== "POST") return Response.json({ success: true });
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
