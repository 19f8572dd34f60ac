// Audio levels without DOM: a WebAudio AnalyserNode on a track (the pre-join meter, our own
// speaking indicator), and remote levels from the peer connection's stats.

let sharedContext = null;

function audioContext() {
  if (!sharedContext) sharedContext = new AudioContext();
  // autoplay policy: a context made before any user gesture starts suspended
  if (sharedContext.state === "suspended") sharedContext.resume().catch(() => {});
  return sharedContext;
}

/** RMS level (0..1) of an audio track, read on demand. Call close() when done. */
export class LevelMeter {
  constructor(track) {
    const ctx = audioContext();
    this.source = ctx.createMediaStreamSource(new MediaStream([track]));
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.buffer = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
  }

  /** Current level, 0..1 (RMS scaled so that normal speech reaches about 0.5). */
  level() {
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const v of this.buffer) sum += v * v;
    const rms = Math.sqrt(sum / this.buffer.length);
    return Math.min(1, rms * 4);
  }

  close() {
    this.source.disconnect();
  }
}

/**
 * From one getStats() call: the inbound audio level (0..1, RFC 6464 as the browser reports it)
 * of each remote audio mid; what the server's receiver reports say about the video we send
 * (fraction lost, round-trip time); and the browser's outgoing bandwidth estimate (informative
 * only: without transport-wide feedback from the SFU it sits at its floor).
 */
export async function connectionStats(pc) {
  const levels = new Map();
  let availableOutgoingBitrate = null;
  let videoFractionLost = null;
  let videoRoundTripS = null;
  if (!pc) return { levels, availableOutgoingBitrate, videoFractionLost, videoRoundTripS };
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio" && s.mid != null) {
      levels.set(s.mid, s.audioLevel || 0);
    }
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.availableOutgoingBitrate) {
      availableOutgoingBitrate = s.availableOutgoingBitrate;
    }
    if (s.type === "remote-inbound-rtp" && s.kind === "video") {
      videoFractionLost = Math.max(videoFractionLost || 0, s.fractionLost || 0);
      if (s.roundTripTime != null) videoRoundTripS = Math.max(videoRoundTripS || 0, s.roundTripTime);
    }
  });
  return { levels, availableOutgoingBitrate, videoFractionLost, videoRoundTripS };
}
