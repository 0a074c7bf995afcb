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
        messages: tg.messages.map(({ text, at, answered, chatId, threadId, messageId, edits }) => ({
          text, at, answered, chatId, threadId, messageId, edits: edits.map((e) => ({ text: e.text, at: e.at })),
        })),
        violations: tg.violations,
        paceViolations: tg.paceViolations(),
        stats: tg.stats(),
      });
    } else if (m === "close") {
      await tg.close();
      parentPort.close();
    }
  });
  parentPort.postMessage({ base: tg.base });
}

/** The next message from `worker`, or its error or exit as an error. */
async function reply(worker, what) {
  const done = new AbortController();
  const { signal } = done;
  try {
    const [m] = await Promise.race([
      once(worker, "message", { signal }),
      once(worker, "error", { signal }).then(([e]) => { throw new Error(`the Telegram fake's thread failed (${what}): ${e.message}`); }),
      once(worker, "exit", { signal }).then(([code]) => { throw new Error(`the Telegram fake's thread exited with ${code} (${what})`); }),
    ]);
    return m;
  } finally {
    done.abort(); // drops the listeners that lost the race (the race already handles their rejections)
  }
}

/**
 * Starts the fake with fakeTelegram's options ({ token, chatId, chats, pace,
 * floodPenalty, forums }); resolves to { base, snapshot(), close() }. A snapshot is
 * { messages: [{ text, at, answered, chatId, threadId, messageId, edits: [{ text, at }] }],
 * violations, paceViolations, stats } (stats: per chat, as fakeTelegram's stats()).
 */
export async function fakeTelegramThread({ token, chatId, chats, pace, floodPenalty, forums }) {
  const options = Object.fromEntries(Object.entries({ token, chatId, chats, pace, floodPenalty, forums }).filter(([, v]) => v !== undefined));
  const worker = new Worker(new URL(import.meta.url), { workerData: options });
  const { base } = await reply(worker, "starting");
  return {
    base,
    async snapshot() {
      worker.postMessage("snapshot");
      return reply(worker, "snapshot");
    },
    async close() {
      const exited = once(worker, "exit");
      worker.postMessage("close");
      await exited;
    },
  };
}
