/* Shadertoy's model of a two-pass shader, in WebGL2, for tests: Buffer A renders into one of a ping-pong pair of
 * RGBA32F textures with the other (its previous frame) as iChannel0, then Image renders onto the canvas with Buffer A
 * as iChannel0. Both passes see the canvas's size as iResolution, and their code is wrapped as shadertoy.com wraps it:
 * its uniforms above, `void main() { mainImage(...); }` below. `new Shadertoy(bufferA, image, width, height)`.
 */
(function () {
  "use strict";

  const HEADER = `#version 300 es
precision highp float;
precision highp int;
uniform vec3 iResolution;
uniform float iTime;
uniform float iTimeDelta;
uniform float iFrameRate;
uniform int iFrame;
uniform float iChannelTime[4];
uniform vec3 iChannelResolution[4];
uniform vec4 iMouse;
uniform vec4 iDate;
uniform float iSampleRate;
uniform sampler2D iChannel0;
uniform sampler2D iChannel1;
uniform sampler2D iChannel2;
uniform sampler2D iChannel3;
`;
  const FOOTER = `
out vec4 shadertoy_out_color;
void main() {
  shadertoy_out_color = vec4(1.0);
  mainImage(shadertoy_out_color, gl_FragCoord.xy);
}
`;
  const VERTEX = `#version 300 es
void main() { vec2 c = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2)); gl_Position = vec4(c * 2.0 - 1.0, 0.0, 1.0); }
`;

  // Pixels travel to and from the test as base64 text: much quicker than JSON arrays of numbers.
  const toBase64 = (array) => {
    const bytes = new Uint8Array(array.buffer), parts = [];
    for (let i = 0; i < bytes.length; i += 0x8000) parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    return btoa(parts.join(""));
  };
  const fromBase64 = (text) => new Float32Array(Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer);

  class Shadertoy {
    constructor(bufferA, image, width, height) {
      const canvas = document.createElement("canvas");
      canvas.width = width;
      canvas.height = height;
      document.body.appendChild(canvas);
      const gl = canvas.getContext("webgl2", { preserveDrawingBuffer: true, antialias: false });
      if (!gl || !gl.getExtension("EXT_color_buffer_float")) throw new Error("no WebGL2 with float render targets");
      Object.assign(this, { gl, canvas, width, height, frame: 0, mouse: [0, 0, 0, 0] });
      const start = performance.now();
      this.passes = { bufferA: this._program(bufferA), image: this._program(image) };
      this.compileMs = performance.now() - start; // the link status was read: both programs are built
      this.textures = [this._texture(), this._texture()]; // [current, previous-to-be]
      this.framebuffer = gl.createFramebuffer();
      this.blank = this._texture(1, 1); // iChannel1..3: unset channels read black
      this.vao = gl.createVertexArray();
    }

    _program(code) {
      const gl = this.gl, program = gl.createProgram();
      for (const [type, source] of [[gl.VERTEX_SHADER, VERTEX], [gl.FRAGMENT_SHADER, HEADER + code + FOOTER]]) {
        const shader = gl.createShader(type);
        gl.shaderSource(shader, source);
        gl.compileShader(shader);
        if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error("shader: " + gl.getShaderInfoLog(shader));
        gl.attachShader(program, shader);
      }
      gl.linkProgram(program);
      if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error("program: " + gl.getProgramInfoLog(program));
      return program;
    }

    _texture(width = this.width, height = this.height) {
      const gl = this.gl, texture = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, width, height, 0, gl.RGBA, gl.FLOAT, null); // zeros, as a new buffer
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
      for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE);
      return texture;
    }

    _draw(program, input, target) {
      const gl = this.gl, u = (name) => gl.getUniformLocation(program, name);
      gl.bindFramebuffer(gl.FRAMEBUFFER, target ? this.framebuffer : null);
      if (target) gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, target, 0);
      gl.viewport(0, 0, this.width, this.height);
      gl.useProgram(program);
      for (let i = 0; i < 4; i++) {
        gl.activeTexture(gl.TEXTURE0 + i);
        gl.bindTexture(gl.TEXTURE_2D, i === 0 ? input : this.blank);
        gl.uniform1i(u(`iChannel${i}`), i);
      }
      const time = this.frame / 60, now = new Date();
      gl.uniform3f(u("iResolution"), this.width, this.height, 1);
      gl.uniform1f(u("iTime"), time);
      gl.uniform1f(u("iTimeDelta"), 1 / 60);
      gl.uniform1f(u("iFrameRate"), 60);
      gl.uniform1i(u("iFrame"), this.frame);
      gl.uniform1fv(u("iChannelTime"), [time, 0, 0, 0]);
      gl.uniform3fv(u("iChannelResolution"), [this.width, this.height, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
      gl.uniform4fv(u("iMouse"), this.mouse);
      gl.uniform4f(u("iDate"), now.getFullYear(), now.getMonth(), now.getDate(), now.getHours() * 3600 + now.getMinutes() * 60);
      gl.uniform1f(u("iSampleRate"), 44100);
      gl.bindVertexArray(this.vao);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }

    /** `n` frames: Buffer A reads its previous frame and writes the next, then Image draws from it. */
    run(n = 1) {
      for (let i = 0; i < n; i++) {
        this._draw(this.passes.bufferA, this.textures[0], this.textures[1]);
        this.textures.reverse();
        this._draw(this.passes.image, this.textures[0], null);
        this.frame++;
      }
      this.gl.finish();
    }

    /** Buffer A as it is now: (height, width, 4) float32s in base64, row y = 0 first (the bottom of the buffer). */
    readBuffer() {
      const gl = this.gl, out = new Float32Array(this.width * this.height * 4);
      gl.bindFramebuffer(gl.FRAMEBUFFER, this.framebuffer);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.textures[0], 0);
      gl.readPixels(0, 0, this.width, this.height, gl.RGBA, gl.FLOAT, out);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      return toBase64(out);
    }

    /** Replace Buffer A's last frame (the next frame's iChannel0) with (height, width, 4) float32s in base64. */
    writeBuffer(values) {
      const gl = this.gl;
      gl.bindTexture(gl.TEXTURE_2D, this.textures[0]);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, this.width, this.height, gl.RGBA, gl.FLOAT, fromBase64(values));
    }

    /** What Image drew: (height, width, 4) bytes in base64, row y = 0 first (the bottom of the canvas). */
    readImage() {
      const gl = this.gl, out = new Uint8Array(this.width * this.height * 4);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.readPixels(0, 0, this.width, this.height, gl.RGBA, gl.UNSIGNED_BYTE, out);
      return toBase64(out);
    }
  }

  window.Shadertoy = Shadertoy;
})();
