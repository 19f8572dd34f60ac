// A WebSocket stand-in for the web unit tests: records what the page sends and lets a test
// open it and deliver messages, through addEventListener listeners (web/protocol.js) or the
// onopen/onmessage properties (web/audience.js).
export function fakeSocketClass() {
  return class FakeSocket {
    static OPEN = 1;
    static made = [];
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closed = null;
      this.listeners = {};
      FakeSocket.made.push(this);
    }
    addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
    send(data) { this.sent.push(JSON.parse(data)); }
    close(code, reason) { this.closed = { code, reason }; }
    fire(type, ev = {}) {
      for (const fn of this.listeners[type] || []) fn(ev);
      const property = this[`on${type}`];
      if (typeof property === "function") property.call(this, ev);
    }
    opened() { this.readyState = 1; this.fire("open"); }
    receive(message) { this.fire("message", { data: JSON.stringify(message) }); }
  };
}
