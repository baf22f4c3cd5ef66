// The microphone, as 16-bit mono frames of 20 ms at the context's rate (16 kHz), posted to
// the page, which sends each one on the WebSocket as a binary message.
class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = Math.round(sampleRate / 50);
    this.buf = new Int16Array(this.frame);
    this.n = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.buf[this.n++] = Math.round(s < 0 ? s * 32768 : s * 32767);
      if (this.n === this.frame) {
        this.port.postMessage(this.buf.buffer, [this.buf.buffer]);
        this.buf = new Int16Array(this.frame);
        this.n = 0;
      }
    }
    return true;
  }
}

registerProcessor("capture", Capture);
