/* nca-live.js: a Neural Cellular Automaton from nca-gradio, stepped live on the visitor's GPU (WebGL2).
 *
 * No dependencies and no build step. Two parts:
 *   NCALive         the runtime: state textures, the step / erase / display passes, reading and writing the state.
 *   NCALive.mount   a small player around it: play/pause, steps per frame, reset, size, zoom, brush, rotation, fps.
 *
 * `model` is the JSON that `nca export --format json` writes (schema in the README); `shaders` maps the names
 * quad.vert, step.frag, erase.frag, display.frag to their sources (the files beside this one).
 *
 * A second model (`graft`, rule B) puts two rules on one grid, as nca_gradio.graft does: a mask (one float per
 * cell) says how much of B each cell runs. Both rules are padded to one shape (the larger channels and hidden size,
 * the union of their kernels, zero weights where a rule lacks one), so one shader (compiled with GRAFT, only then)
 * runs the per-cell blend of compatible rules and, with the mask read as 0 or 1 (GRAFT_HARD), unrelated ones.
 */
(function (global) {
  "use strict";

  const MAX_OUTPUTS = 8; // render targets one pass writes; more state layers take more passes

  function mat4Blocks(rows, cols, blockRows, blockCols, value) {
    // A float texture of mat4 blocks: texel (4 * bc + q, br) holds column q of block (br, bc).
    const width = 4 * blockCols, data = new Float32Array(width * blockRows * 4);
    for (let br = 0; br < blockRows; br++)
      for (let bc = 0; bc < blockCols; bc++)
        for (let q = 0; q < 4; q++)
          for (let r = 0; r < 4; r++) data[((br * width) + 4 * bc + q) * 4 + r] = value(br, bc, r, q);
    return { width, height: blockRows, data };
  }

  const sameKernel = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

  class NCALive {
    /** True when this browser can run the rule: WebGL2 with float (or half-float) render targets. */
    static supported() {
      try {
        const gl = document.createElement("canvas").getContext("webgl2");
        return !!(gl && (gl.getExtension("EXT_color_buffer_float") || gl.getExtension("EXT_color_buffer_half_float")));
      } catch (e) {
        return false;
      }
    }

    /** Nearest-cell resampling of a (height x width) row-major mask to size x size cells. */
    static resample(values, width, height, size) {
      const out = new Float32Array(size * size);
      for (let row = 0; row < size; row++) {
        const from = Math.floor(((row + 0.5) * height) / size) * width;
        for (let col = 0; col < size; col++) out[row * size + col] = values[from + Math.floor(((col + 0.5) * width) / size)];
      }
      return out;
    }

    constructor(canvas, model, shaders, size, graft) {
      const gl = canvas.getContext("webgl2", { preserveDrawingBuffer: true, antialias: false });
      if (!gl) throw new Error("WebGL2 is not available in this browser");
      // float32 state where the GPU can render to it; else half floats (some phones), coarser but the same rule.
      if (gl.getExtension("EXT_color_buffer_float")) this.stateFormat = gl.RGBA32F;
      else if (gl.getExtension("EXT_color_buffer_half_float")) this.stateFormat = gl.RGBA16F;
      else throw new Error("this browser's WebGL2 cannot render to float textures");
      this.precision = this.stateFormat === gl.RGBA32F ? "float32" : "float16";
      this.gl = gl;
      this.canvas = canvas;
      this.model = model;
      this.graft = graft || null; // rule B, or null: one rule, the shaders exactly as without grafts
      const rules = this.graft ? [model, this.graft] : [model];
      // Compatible rules (nca_gradio.graft.compatible) blend per cell; unrelated ones run one rule per cell.
      this.blends = rules.every((r) => r.channels === model.channels && r.hidden === model.hidden && r.perception === model.perception);
      this.channels = Math.max(...rules.map((r) => r.channels));
      this.layers = Math.ceil(this.channels / 4);
      // The kernels of both rules, each once; kernelMaps[r][k] is where rule r's kernel k sits among them.
      this.kernelList = [];
      const kernelMaps = rules.map((rule) =>
        rule.kernels.map((kernel) => {
          const flat = kernel.flat(), at = this.kernelList.findIndex((known) => sameKernel(known, flat));
          return at >= 0 ? at : this.kernelList.push(flat) - 1;
        }),
      );
      this.kernelCount = this.kernelList.length;
      const sobel = rules.findIndex((r) => r.perception === "sobel");
      this.sobelAxes = sobel >= 0 ? [kernelMaps[sobel][1], kernelMaps[sobel][2]] : null; // what the rotation turns
      this.fireRate = model.fire_rate;
      this.fireRateB = this.graft ? this.graft.fire_rate : 0;
      this.showMask = false;
      this.angle = 0;
      this.stepCount = 0;
      this.vao = gl.createVertexArray();
      const groups = Math.ceil(Math.max(...rules.map((r) => r.hidden)) / 4);
      const graftDefines = this.graft ? "#define GRAFT\n" + (this.blends ? "" : "#define GRAFT_HARD\n") : "";
      const outputs = Math.min(MAX_OUTPUTS, gl.getParameter(gl.MAX_DRAW_BUFFERS), gl.getParameter(gl.MAX_COLOR_ATTACHMENTS));
      this.outputs = outputs;
      // Shaders from `nca export --format glsl` carry a #version line and this model's defines: drop them, the runtime sets its own.
      const clean = (source) =>
        source.replace(/^#version[^\n]*\n/, "").replace(/^#define (STATE_LAYERS|KERNELS|HIDDEN_GROUPS|OUT_BASE|OUT_COUNT) .*\n/gm, "");
      shaders = Object.fromEntries(Object.entries(shaders).map(([name, source]) => [name, name.endsWith(".frag") ? clean(source) : source]));
      const defines = (base, count) =>
        `#define STATE_LAYERS ${this.layers}\n#define KERNELS ${this.kernelCount}\n#define HIDDEN_GROUPS ${groups}\n` +
        `#define OUT_BASE ${base}\n#define OUT_COUNT ${count}\n` + graftDefines;
      this.passes = []; // [{base, count, step, erase}]: layer groups, each written by its own programs
      for (let base = 0; base < this.layers; base += outputs) {
        const count = Math.min(outputs, this.layers - base);
        this.passes.push({
          base, count,
          step: this._program(shaders["quad.vert"], defines(base, count) + shaders["step.frag"]),
          erase: this._program(shaders["quad.vert"], defines(base, count) + shaders["erase.frag"]),
        });
      }
      this.display = this._program(shaders["quad.vert"], graftDefines + shaders["display.frag"]);
      this.textures = this._weights(model, kernelMaps[0], groups, ""); // what the step pass samples, by uniform name
      if (this.graft) Object.assign(this.textures, this._weights(this.graft, kernelMaps[1], groups, "_b"));
      this.framebuffer = gl.createFramebuffer();
      this.resize(size || 256);
    }

    _program(vertex, fragment) {
      const gl = this.gl, program = gl.createProgram();
      for (const [type, source] of [[gl.VERTEX_SHADER, vertex], [gl.FRAGMENT_SHADER, fragment]]) {
        const shader = gl.createShader(type);
        gl.shaderSource(shader, source.startsWith("#version") ? source : "#version 300 es\n" + source);
        gl.compileShader(shader);
        if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error("shader: " + gl.getShaderInfoLog(shader));
        gl.attachShader(program, shader);
      }
      gl.linkProgram(program);
      if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error("program: " + gl.getProgramInfoLog(program));
      const uniforms = {};
      for (let i = 0, n = gl.getProgramParameter(program, gl.ACTIVE_UNIFORMS); i < n; i++) {
        const name = gl.getActiveUniform(program, i).name.replace(/\[0\]$/, "");
        uniforms[name] = gl.getUniformLocation(program, name);
      }
      return { program, uniforms };
    }

    _floatTexture(width, height, data, format) {
      const gl = this.gl, texture = gl.createTexture(), [internal, layout] = format === "R" ? [gl.R32F, gl.RED] : [gl.RGBA32F, gl.RGBA];
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.texImage2D(gl.TEXTURE_2D, 0, internal, width, height, 0, layout, gl.FLOAT, data);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
      return texture;
    }

    /** One rule's weights as textures named u_w1, u_b1, u_w2 + suffix, padded to the grid's layers, `groups` and kernels. */
    _weights(m, kernelMap, groups, suffix) {
      const C = m.channels, H = m.hidden, K = m.kernels.length, L = this.layers;
      // w1[h][c * K + k]: block (g, j * L + t), column q (channel 4t + q), row r (hidden 4g + r); j = kernelMap[k].
      const w1 = mat4Blocks(H, C * K, groups, this.kernelCount * L, (g, jt, r, q) => {
        const k = kernelMap.indexOf(Math.floor(jt / L)), t = jt % L, h = 4 * g + r, c = 4 * t + q;
        return h < H && c < C && k >= 0 ? m.w1[h][c * K + k] : 0;
      });
      const b1 = new Float32Array(groups * 4);
      for (let h = 0; h < H; h++) b1[h] = m.b1[h];
      // w2[c][h]: block (t, g), column q (hidden 4g + q), row r (channel 4t + r).
      const w2 = mat4Blocks(C, H, L, groups, (t, g, r, q) => {
        const c = 4 * t + r, h = 4 * g + q;
        return c < C && h < H ? m.w2[c][h] : 0;
      });
      return {
        ["u_w1" + suffix]: this._floatTexture(w1.width, w1.height, w1.data),
        ["u_b1" + suffix]: this._floatTexture(groups, 1, b1),
        ["u_w2" + suffix]: this._floatTexture(w2.width, w2.height, w2.data),
      };
    }

    _stateArray() {
      const gl = this.gl, texture = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D_ARRAY, texture);
      gl.texStorage3D(gl.TEXTURE_2D_ARRAY, 1, this.stateFormat, this.size, this.size, this.layers);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D_ARRAY, p, gl.NEAREST);
      return texture;
    }

    /** A new blank grid of size x size cells; a graft's mask is stretched to it (the painted layout stays). */
    resize(size) {
      const gl = this.gl, old = this.size;
      if (this.states) this.states.forEach((t) => gl.deleteTexture(t));
      this.size = size;
      this.canvas.width = this.canvas.height = size;
      this.states = [this._stateArray(), this._stateArray()]; // ping-pong: [current, next]
      if (this.graft) {
        if (this.textures.u_mask) gl.deleteTexture(this.textures.u_mask);
        this.mask = this.mask ? NCALive.resample(this.mask, old, old, size) : new Float32Array(size * size);
        this.textures.u_mask = this._floatTexture(size, size, this.mask, "R");
      }
      this.reset();
    }

    /** Every cell back to zero (the empty grid the model grows from). A graft's mask stays: it is the layout, not the state. */
    reset() {
      this.writeState(new Float32Array(this.size * this.size * this.channels));
      this.stepCount = 0;
    }

    /** The perception kernels, with Sobel x / y turned by `angle` (radians) as Self-Organising Textures does. */
    kernels() {
      const flat = this.kernelList.slice();
      if (this.sobelAxes && this.angle) {
        const c = Math.cos(this.angle), s = Math.sin(this.angle), [x, y] = this.sobelAxes, [sx, sy] = [flat[x], flat[y]];
        flat[x] = sx.map((v, i) => c * v - s * sy[i]);
        flat[y] = sx.map((v, i) => s * v + c * sy[i]);
      }
      return new Float32Array(flat.flat());
    }

    _bindTargets(base, count) {
      const gl = this.gl, next = this.states[1];
      gl.bindFramebuffer(gl.FRAMEBUFFER, this.framebuffer);
      const buffers = [];
      for (let i = 0; i < this.outputs; i++) {
        const attached = i < count ? next : null;
        gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0 + i, attached, 0, i < count ? base + i : 0);
        if (i < count) buffers.push(gl.COLOR_ATTACHMENT0 + i);
      }
      gl.drawBuffers(buffers);
      gl.viewport(0, 0, this.size, this.size);
    }

    _run(pass, which, setUniforms) {
      const gl = this.gl, prog = pass[which];
      this._bindTargets(pass.base, pass.count);
      gl.useProgram(prog.program);
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D_ARRAY, this.states[0]);
      gl.uniform1i(prog.uniforms.u_state, 0);
      setUniforms(prog.uniforms);
      gl.bindVertexArray(this.vao);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }

    _swap() {
      this.states.reverse();
      this.gl.bindFramebuffer(this.gl.FRAMEBUFFER, null);
    }

    /** `n` steps of the rule. */
    step(n = 1) {
      const gl = this.gl, kernels = this.kernels();
      for (let i = 0; i < n; i++) {
        const seed = (Math.random() * 4294967296) >>> 0;
        for (const pass of this.passes) {
          this._run(pass, "step", (u) => {
            let unit = 1;
            for (const [name, texture] of Object.entries(this.textures)) {
              gl.activeTexture(gl.TEXTURE0 + unit);
              gl.bindTexture(gl.TEXTURE_2D, texture);
              gl.uniform1i(u[name], unit++);
            }
            gl.uniform1fv(u.u_kernels, kernels);
            gl.uniform1f(u.u_fire_rate, this.fireRate);
            if (this.graft) gl.uniform1f(u.u_fire_rate_b, this.fireRateB);
            gl.uniform1ui(u.u_seed, seed);
          });
        }
        this._swap();
        this.stepCount++;
      }
    }

    /** Zero the cells within `radius` cells of (x = column, y = row), wrapping at the edges. */
    erase(x, y, radius) {
      for (const pass of this.passes) {
        this._run(pass, "erase", (u) => {
          this.gl.uniform2f(u.u_center, x, y);
          this.gl.uniform1f(u.u_radius, radius);
        });
      }
      this._swap();
    }

    /** Set the graft's mask to `value` (0 = rule A, 1 = rule B) within `radius` cells of (x, y), on the torus as erase. */
    paint(x, y, radius, value) {
      if (!this.graft) throw new Error("a mask needs two rules: give NCALive a second model");
      const n = this.size, reach = Math.ceil(radius) + 1, rows = new Set();
      value = Math.min(1, Math.max(0, value));
      for (let dy = -reach; dy <= reach; dy++) {
        const row = (((Math.floor(y) + dy) % n) + n) % n;
        if (rows.has(row)) continue;
        rows.add(row);
        let ry = Math.abs(row + 0.5 - y);
        ry = Math.min(ry, n - ry);
        for (let col = 0; col < n; col++) {
          let rx = Math.abs(col + 0.5 - x);
          rx = Math.min(rx, n - rx);
          if (rx * rx + ry * ry < radius * radius) this.mask[row * n + col] = value;
        }
      }
      const gl = this.gl;
      gl.bindTexture(gl.TEXTURE_2D, this.textures.u_mask);
      for (const row of rows) gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, row, n, 1, gl.RED, gl.FLOAT, this.mask, row * n);
    }

    /** Replace the graft's mask: size * size values [row][column], each how much of rule B the cell runs. */
    setMask(values) {
      if (!this.graft) throw new Error("a mask needs two rules: give NCALive a second model");
      if (values.length !== this.size * this.size) throw new Error(`the mask needs ${this.size * this.size} values, got ${values.length}`);
      this.mask = Float32Array.from(values, (v) => Math.min(1, Math.max(0, v)));
      const gl = this.gl;
      gl.bindTexture(gl.TEXTURE_2D, this.textures.u_mask);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, this.size, this.size, gl.RED, gl.FLOAT, this.mask);
    }

    /** A copy of the graft's mask ([row][column]), or null with one rule. */
    readMask() {
      return this.mask ? this.mask.slice() : null;
    }

    /** Draw the state onto the canvas. */
    render() {
      const gl = this.gl;
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.viewport(0, 0, this.size, this.size);
      gl.useProgram(this.display.program);
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D_ARRAY, this.states[0]);
      gl.uniform1i(this.display.uniforms.u_state, 0);
      if (this.graft) {
        gl.activeTexture(gl.TEXTURE1);
        gl.bindTexture(gl.TEXTURE_2D, this.textures.u_mask);
        gl.uniform1i(this.display.uniforms.u_mask, 1);
        gl.uniform1f(this.display.uniforms.u_show_mask, this.showMask ? 1 : 0);
      }
      gl.bindVertexArray(this.vao);
      gl.drawArrays(gl.TRIANGLES, 0, 3);
    }

    /** The state as a Float32Array laid out [row][column][channel], like a (H, W, C) array. */
    readState() {
      const gl = this.gl, n = this.size * this.size, out = new Float32Array(n * this.channels);
      const layer = new Float32Array(n * 4);
      gl.bindFramebuffer(gl.FRAMEBUFFER, this.framebuffer);
      for (let i = 1; i < this.outputs; i++) gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0 + i, null, 0, 0);
      for (let t = 0; t < this.layers; t++) {
        gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, this.states[0], 0, t);
        gl.readBuffer(gl.COLOR_ATTACHMENT0);
        gl.readPixels(0, 0, this.size, this.size, gl.RGBA, gl.FLOAT, layer);
        for (let i = 0; i < n; i++)
          for (let q = 0; q < 4 && 4 * t + q < this.channels; q++) out[i * this.channels + 4 * t + q] = layer[i * 4 + q];
      }
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      return out;
    }

    /** Replace the state with a Float32Array laid out [row][column][channel]. */
    writeState(values) {
      const gl = this.gl, n = this.size * this.size, data = new Float32Array(n * 4 * this.layers);
      for (let i = 0; i < n; i++)
        for (let c = 0; c < this.channels; c++) data[(Math.floor(c / 4) * n + i) * 4 + (c % 4)] = values[i * this.channels + c];
      gl.bindTexture(gl.TEXTURE_2D_ARRAY, this.states[0]);
      gl.texSubImage3D(gl.TEXTURE_2D_ARRAY, 0, 0, 0, 0, this.size, this.size, this.layers, gl.RGBA, gl.FLOAT, data);
    }
  }

  // ------------------------------------------------------------------ the player around the runtime

  const SIZES = [64, 128, 256, 512, 768, 1024];
  const STYLE = `
.nca-live { font: 14px system-ui, sans-serif; color: #222; }
.nca-live .nca-stage { overflow: auto; max-width: 100%; max-height: 80vh; background: #777; display: inline-block; }
.nca-live canvas { display: block; image-rendering: pixelated; cursor: crosshair; touch-action: none; }
.nca-live .nca-controls { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; margin: 8px 0; }
.nca-live label { display: inline-flex; gap: 4px; align-items: center; }
.nca-live button { padding: 3px 12px; }
.nca-live .nca-readout { font-variant-numeric: tabular-nums; color: #555; }
.nca-live .nca-unsupported { padding: 12px; background: #fff3cd; border: 1px solid #e0c060; border-radius: 6px; }
`;

  function element(tag, attributes, children) {
    const el = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([k, v]) => (k === "text" ? (el.textContent = v) : el.setAttribute(k, v)));
    (children || []).forEach((c) => el.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return el;
  }

  /** "SwiftShader" or "llvmpipe" when WebGL runs on the CPU (no GPU, or a blocked one): the player then starts small. */
  NCALive.softwareRenderer = function () {
    try {
      const gl = document.createElement("canvas").getContext("webgl2"), info = gl.getExtension("WEBGL_debug_renderer_info");
      const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
      return (name.match(/SwiftShader|llvmpipe|softpipe|Software/i) || [null])[0];
    } catch (e) {
      return null;
    }
  };

  /** A mask as the page inlines it ({width, height, levels}: base64 bytes, 255 = rule B) stretched to size x size. */
  const decodeMask = (mask, size) =>
    NCALive.resample(Uint8Array.from(atob(mask.levels), (c) => c.charCodeAt(0) / 255), mask.width, mask.height, size);

  /**
   * The two-rule controls: what the brush does (erase, paint B, paint A), for compatible rules the blend the B brush
   * and the fill paint, and a tint that shows the mask. `paints()` is the mask value a stroke sets, or null to erase.
   */
  function graftControls(nca, model, graft) {
    const nameA = model.name || "rule A", nameB = graft.name || "rule B";
    const mode = element("select", { "aria-label": "brush mode", "data-testid": "nca-brush-mode" });
    [["b", `paint B (${nameB})`], ["a", `paint A (${nameA})`], ["erase", "erase"]].forEach(([value, text]) =>
      mode.appendChild(element("option", { value, text })));
    const show = element("input", { type: "checkbox", "aria-label": "show mask", "data-testid": "nca-show-mask" });
    show.onchange = () => { nca.showMask = show.checked; nca.render(); };
    const row = element("div", { class: "nca-controls", "data-testid": "nca-graft" }, [
      element("label", { title: `where each rule runs: A is ${nameA}, B is ${nameB}` }, ["brush paints", mode]),
    ]);
    let blend = null;
    if (nca.blends) {  // only rules of one shape and perception can mix their weights; unrelated ones meet at a seam
      blend = element("input", { type: "range", min: 0, max: 1, step: 0.01, value: 1, "aria-label": "blend", "data-testid": "nca-blend" });
      const value = element("span", { class: "nca-readout", text: "1.00" });
      blend.oninput = () => (value.textContent = Number(blend.value).toFixed(2));
      const fill = element("button", { "data-testid": "nca-fill", text: "Fill all" });
      fill.onclick = () => { nca.setMask(new Float32Array(nca.size * nca.size).fill(Number(blend.value))); nca.render(); };
      row.appendChild(element("label", { title: `how much of ${nameB} the B brush and Fill all paint: 0 is ${nameA}, 1 is ${nameB}` },
        [`A ← blend → B`, blend, value]));
      row.appendChild(fill);
    }
    row.appendChild(element("label", { title: `tints the cells: orange runs ${nameA}, blue ${nameB}` }, [show, "show mask"]));
    const paints = () => (mode.value === "erase" ? null : mode.value === "a" ? 0 : blend ? Number(blend.value) : 1);
    return { row, paints };
  }

  /**
   * Build the player inside `root` and start growing. Options: size (cells a side, default 256), zoom (default 2),
   * stepsPerFrame (default 1), autoplay (default true), fallback (HTML shown when WebGL2 is missing), and for two
   * rules graft (rule B's model) and mask (its starting layout, as the page inlines it; default all A).
   * Returns the player ({nca, play(), pause(), ...}) or null when the browser cannot run it.
   */
  NCALive.mount = function (root, model, shaders, options) {
    const opts = Object.assign({ size: 256, zoom: 2, stepsPerFrame: 1, autoplay: true, fallback: "" }, options || {});
    if (opts.size === "auto") [opts.size, opts.zoom] = NCALive.softwareRenderer() ? [64, 4] : [256, 2];
    root.classList.add("nca-live");
    if (!document.getElementById("nca-live-style")) document.head.appendChild(element("style", { id: "nca-live-style", text: STYLE }));
    const canvas = element("canvas", { "data-testid": "nca-canvas" });
    let nca;
    try {
      if (!NCALive.supported()) throw new Error("WebGL2 with float render targets is not available");
      nca = new NCALive(canvas, model, shaders, opts.size, opts.graft);
      if (opts.graft && opts.mask) nca.setMask(decodeMask(opts.mask, nca.size));
    } catch (error) {
      const note = element("div", { class: "nca-unsupported", "data-testid": "nca-unsupported" });
      note.innerHTML = "<b>This browser cannot run the live texture</b> (" + String(error.message).replace(/[<>&]/g, "") +
        "). It needs WebGL2 with float render targets: a recent Chrome, Edge, Firefox or Safari. " + opts.fallback;
      root.appendChild(note);
      return null;
    }

    const select = (values, value, label) => {
      const s = element("select", { "aria-label": label });
      values.forEach((v) => s.appendChild(element("option", { value: v, text: String(v) })));
      s.value = value;
      return s;
    };
    const number = (min, max, step, value, label) => element("input", { type: "range", min, max, step, value, "aria-label": label });
    const play = element("button", { "data-testid": "nca-play", text: "Pause" });
    const reset = element("button", { "data-testid": "nca-reset", text: "Reset" });
    const speed = element("input", { type: "number", min: 1, max: 64, value: opts.stepsPerFrame, style: "width:4em", "aria-label": "steps per frame" });
    const size = select(SIZES.includes(opts.size) ? SIZES : SIZES.concat([opts.size]).sort((a, b) => a - b), opts.size, "canvas size");
    const zoom = select([1, 2, 3, 4], opts.zoom, "zoom");
    const brush = number(1, 64, 1, Math.max(4, Math.round(opts.size / 16)), "brush size");
    const angle = number(0, 360, 1, 0, "rotation");
    const angleText = element("span", { text: "0°" });
    const readout = element("span", { class: "nca-readout", "data-testid": "nca-readout", text: "…" });
    const controls = element("div", { class: "nca-controls" }, [
      play, reset,
      element("label", {}, ["steps/frame", speed]),
      element("label", {}, ["size", size]),
      element("label", {}, ["zoom", zoom]),
      element("label", { title: "drag on the texture to erase it" }, ["brush", brush]),
    ]);
    if (nca.sobelAxes) controls.appendChild(element("label", { title: "turns the Sobel kernels, so the texture turns" }, ["rotation", angle, angleText]));
    controls.appendChild(readout);
    const stage = element("div", { class: "nca-stage" }, [canvas]);
    root.appendChild(controls);
    const graft = opts.graft ? graftControls(nca, model, opts.graft) : null;
    if (graft) root.appendChild(graft.row);
    root.appendChild(stage);

    const player = { nca, playing: opts.autoplay, fps: 0, stepsPerSecond: 0 };
    const applyZoom = () => {
      canvas.style.width = canvas.style.height = nca.size * Number(zoom.value) + "px";
    };
    applyZoom();
    player.play = () => { player.playing = true; play.textContent = "Pause"; };
    player.pause = () => { player.playing = false; play.textContent = "Play"; };
    if (!player.playing) player.pause();
    play.onclick = () => (player.playing ? player.pause() : player.play());
    reset.onclick = () => { nca.reset(); nca.render(); };
    size.onchange = () => { nca.resize(Number(size.value)); applyZoom(); nca.render(); };
    zoom.onchange = applyZoom;
    angle.oninput = () => { nca.angle = (Number(angle.value) * Math.PI) / 180; angleText.textContent = angle.value + "°"; };

    // A GPU reset (driver update, too many contexts) loses the state and the programs: say so rather than freeze.
    canvas.addEventListener("webglcontextlost", (event) => {
      event.preventDefault();
      player.pause();
      readout.textContent = "the GPU reset this canvas: reload the page to start again";
    });

    // Drag to erase (or, with two rules, to paint the mask): pointer position -> cell (column, row).
    let erasing = false;
    const eraseAt = (event) => {
      const box = canvas.getBoundingClientRect();
      const x = ((event.clientX - box.left) / box.width) * nca.size, y = ((event.clientY - box.top) / box.height) * nca.size;
      const paints = graft ? graft.paints() : null;
      if (paints === null) nca.erase(x, y, Number(brush.value));
      else nca.paint(x, y, Number(brush.value), paints);
      nca.render();
    };
    canvas.addEventListener("pointerdown", (e) => { erasing = true; canvas.setPointerCapture(e.pointerId); eraseAt(e); });
    canvas.addEventListener("pointermove", (e) => erasing && eraseAt(e));
    canvas.addEventListener("pointerup", () => (erasing = false));
    canvas.addEventListener("pointercancel", () => (erasing = false));

    // The loop: steps per frame while playing; the readout counts frames and steps over the last second.
    // Off screen (a hidden tab, scrolled away) it neither steps nor draws: the visitor's GPU rests.
    player.visible = true;
    if (typeof IntersectionObserver !== "undefined")
      new IntersectionObserver((entries) => (player.visible = entries[entries.length - 1].isIntersecting)).observe(canvas);
    let frames = 0, stepsDone = 0, since = performance.now();
    const frame = (now) => {
      if (nca.gl.isContextLost()) return;
      if (!player.visible) {
        frames = stepsDone = 0;
        since = now;
        requestAnimationFrame(frame);
        return;
      }
      if (player.playing) {
        const n = Math.max(1, Math.min(64, Math.round(Number(speed.value)) || 1));
        nca.step(n);
        stepsDone += n;
      }
      nca.render();
      frames++;
      if (now - since >= 1000) {
        player.fps = (frames * 1000) / (now - since);
        player.stepsPerSecond = (stepsDone * 1000) / (now - since);
        readout.textContent = `${player.fps.toFixed(0)} fps · ${player.stepsPerSecond.toFixed(0)} steps/s · step ${nca.stepCount}` +
          (nca.precision === "float32" ? "" : " · half floats");
        frames = stepsDone = 0;
        since = now;
      }
      requestAnimationFrame(frame);
    };
    nca.render();
    requestAnimationFrame(frame);
    return player;
  };

  global.NCALive = NCALive;
})(typeof window !== "undefined" ? window : this);
