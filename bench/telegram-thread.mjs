// The Telegram fake on a thread of its own. Telegram is another machine: its answers
// must not wait behind the load generator's event loop, or the bench would count the
// generator's own backlog as POST-to-Telegram latency. Same fake, same checks as the
// end-to-end tests (tests/e2e/fakes.mjs).
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { once } from "node:events";
import { fakeTelegram } from "../tests/e2e/fakes.mjs";

if (!isMainThread) {
  const tg = await fakeTelegram(workerData);
  parentPort.on("message", async (m) => {
    if (m === "snapshot") {
      parentPort.postMessage({
        messages: tg.messages.map(({ text, at, answered }) => ({ text, at, answered })),
        violations: tg.violations,
      });
    } else if (m === "close") {
      await tg.close();
      parentPort.close();
    }
  });
  parentPort.postMessage({ base: tg.base });
}

/** Starts the fake; resolves to { base, snapshot() → { messages, violations }, close() }. */
export async function fakeTelegramThread({ token, chatId }) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { token, chatId } });
  const [{ base }] = await once(worker, "message");
  return {
    base,
    async snapshot() {
      worker.postMessage("snapshot");
      const [s] = await once(worker, "message");
      return s;
    },
    async close() {
      worker.postMessage("close");
      await once(worker, "exit");
    },
  };
}
