// Optional alert sound: a short WebAudio beep (no file to download). The AudioContext is created on the
// user's click on the checkbox, as browsers only allow audio after a gesture.
let ctx = null;
let last = 0;

export function enableSound(on) {
  if (on && !ctx) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (Ctx) ctx = new Ctx();
  }
  if (ctx && on && ctx.state === "suspended") ctx.resume();
}

/** Two short tones; at most one beep a second however many alerts arrive. */
export function beep() {
  const box = document.getElementById("sound");
  if (!box || !box.checked || !ctx) return;
  const now = performance.now();
  if (now - last < 1000) return;
  last = now;
  for (const [i, f] of [[0, 880], [1, 660]]) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = f;
    gain.gain.value = 0.15;
    osc.connect(gain).connect(ctx.destination);
    const at = ctx.currentTime + i * 0.18;
    osc.start(at);
    osc.stop(at + 0.15);
  }
}
