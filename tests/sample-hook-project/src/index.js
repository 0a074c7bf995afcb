export default {
  async fetch() {
    return new Response("hello from sample-hook-app");
  },
};
