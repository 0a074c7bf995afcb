// The bench's baseline: the least a /notify can do on this runtime (KV get, D1 insert,
// queue send; a consumer that only acknowledges). `npm run bench` runs it beside
// edge-notifier so the figures can be read against what the machine allows.
export default {
  async fetch(req, env) {
    if (req.method !== "POST") return Response.json({ success: true });
    const body = await req.json();
    const key = `${body.deployment.type}:${body.deployment.deploymentId}`;
    if (await env.STATE.get(key)) return Response.json({ success: true, message: "Already processed" });
    const r = await env.DB.prepare("INSERT INTO seen (key) VALUES (?1) ON CONFLICT DO NOTHING").bind(key).run();
    if (r.meta.changes === 0) return Response.json({ success: true, message: "Already processed" });
    await env.JOBS.send({ key });
    return Response.json({ success: true, message: "Notification queued" }, { status: 202 });
  },
  async queue(batch) {
    batch.ackAll();
  },
};
