// One NCA step, the rule of nca_gradio.model.NCA:
//   perceive (3x3 kernels on a torus) -> w1 (1x1 conv, bias) -> relu -> w2 (1x1 conv) -> masked residual update.
// The state is a texture array: layer t holds channels 4t..4t+3 (RGBA), texel (x, y) is the grid's column x, row y.
// The runtime prepends (#version line, then) these defines:
//   STATE_LAYERS   number of layers (ceil(channels / 4))
//   KERNELS        perception kernels per channel (4 sobel, 3 isotropic)
//   HIDDEN_GROUPS  ceil(hidden / 4)
//   OUT_BASE, OUT_COUNT  the layers this pass writes (OUT_COUNT <= 8 render targets; more layers, more passes)
// and, for two rules on one grid (nca_gradio.graft), GRAFT: a second set of weights (u_*_b, padded by the runtime to
// the same shapes) and a mask m per cell; each cell runs the rule whose weights are (1 - m) * A + m * B. With
// GRAFT_HARD (unrelated rules) m is read as A below 0.5 and B from 0.5.
precision highp float;
precision highp int;
precision highp sampler2DArray;

uniform sampler2DArray u_state;
uniform sampler2D u_w1;    // (4 * KERNELS * STATE_LAYERS) x HIDDEN_GROUPS: mat4 columns of block (g, m) at x = 4m + q, y = g
uniform sampler2D u_b1;    // HIDDEN_GROUPS x 1
uniform sampler2D u_w2;    // (4 * HIDDEN_GROUPS) x STATE_LAYERS: mat4 columns of block (t, g) at x = 4g + q, y = t
uniform float u_kernels[KERNELS * 9];  // row-major 3x3 kernels (cross-correlation, as torch's conv2d)
uniform float u_fire_rate;  // probability that a cell applies its update this step
uniform uint u_seed;        // a new number every step: the cells' coin flips
#ifdef GRAFT
uniform sampler2D u_w1_b;     // rule B's weights, laid out as u_w1, u_b1, u_w2
uniform sampler2D u_b1_b;
uniform sampler2D u_w2_b;
uniform sampler2D u_mask;     // size x size, R: how much of rule B the cell runs
uniform float u_fire_rate_b;
#endif

layout(location = 0) out vec4 o0;
#if OUT_COUNT > 1
layout(location = 1) out vec4 o1;
#endif
#if OUT_COUNT > 2
layout(location = 2) out vec4 o2;
#endif
#if OUT_COUNT > 3
layout(location = 3) out vec4 o3;
#endif
#if OUT_COUNT > 4
layout(location = 4) out vec4 o4;
#endif
#if OUT_COUNT > 5
layout(location = 5) out vec4 o5;
#endif
#if OUT_COUNT > 6
layout(location = 6) out vec4 o6;
#endif
#if OUT_COUNT > 7
layout(location = 7) out vec4 o7;
#endif

// PCG3D (Jarzynski and Olano 2020): a good integer hash, one coin per cell and step.
uvec3 pcg3d(uvec3 v) {
    v = v * 1664525u + 1013904223u;
    v.x += v.y * v.z; v.y += v.z * v.x; v.z += v.x * v.y;
    v ^= v >> 16u;
    v.x += v.y * v.z; v.y += v.z * v.x; v.z += v.x * v.y;
    return v;
}

void main() {
    ivec2 size = textureSize(u_state, 0).xy;
    ivec2 cell = ivec2(gl_FragCoord.xy);

    // Perception: p[k * STATE_LAYERS + t] = kernel k applied to layer t, with wrap-around edges.
    vec4 p[KERNELS * STATE_LAYERS];
    for (int i = 0; i < KERNELS * STATE_LAYERS; i++) p[i] = vec4(0.0);
    for (int dy = -1; dy <= 1; dy++) {
        for (int dx = -1; dx <= 1; dx++) {
            ivec2 at = (cell + ivec2(dx, dy) + size) % size;
            int tap = (dy + 1) * 3 + (dx + 1);
            for (int t = 0; t < STATE_LAYERS; t++) {
                vec4 v = texelFetch(u_state, ivec3(at, t), 0);
                for (int k = 0; k < KERNELS; k++) p[k * STATE_LAYERS + t] += u_kernels[k * 9 + tap] * v;
            }
        }
    }

    // The two 1x1 layers, four hidden units at a time.
    vec4 update[OUT_COUNT];
    for (int t = 0; t < OUT_COUNT; t++) update[t] = vec4(0.0);
#ifdef GRAFT
    float blend = texelFetch(u_mask, cell, 0).r;
#ifdef GRAFT_HARD
    blend = blend >= 0.5 ? 1.0 : 0.0;
#endif
    vec4 update_b[OUT_COUNT];
    for (int t = 0; t < OUT_COUNT; t++) update_b[t] = vec4(0.0);
#endif
    for (int g = 0; g < HIDDEN_GROUPS; g++) {
        vec4 h = texelFetch(u_b1, ivec2(g, 0), 0);
        for (int m = 0; m < KERNELS * STATE_LAYERS; m++) {
            int x = 4 * m;
            h += mat4(texelFetch(u_w1, ivec2(x, g), 0), texelFetch(u_w1, ivec2(x + 1, g), 0),
                      texelFetch(u_w1, ivec2(x + 2, g), 0), texelFetch(u_w1, ivec2(x + 3, g), 0)) * p[m];
        }
#ifdef GRAFT
        vec4 h_b = texelFetch(u_b1_b, ivec2(g, 0), 0);
        for (int m = 0; m < KERNELS * STATE_LAYERS; m++) {
            int x = 4 * m;
            h_b += mat4(texelFetch(u_w1_b, ivec2(x, g), 0), texelFetch(u_w1_b, ivec2(x + 1, g), 0),
                        texelFetch(u_w1_b, ivec2(x + 2, g), 0), texelFetch(u_w1_b, ivec2(x + 3, g), 0)) * p[m];
        }
        h = (1.0 - blend) * h + blend * h_b;
#endif
        h = max(h, 0.0);
        for (int t = 0; t < OUT_COUNT; t++) {
            int x = 4 * g, row = OUT_BASE + t;
            update[t] += mat4(texelFetch(u_w2, ivec2(x, row), 0), texelFetch(u_w2, ivec2(x + 1, row), 0),
                              texelFetch(u_w2, ivec2(x + 2, row), 0), texelFetch(u_w2, ivec2(x + 3, row), 0)) * h;
#ifdef GRAFT
            update_b[t] += mat4(texelFetch(u_w2_b, ivec2(x, row), 0), texelFetch(u_w2_b, ivec2(x + 1, row), 0),
                                texelFetch(u_w2_b, ivec2(x + 2, row), 0), texelFetch(u_w2_b, ivec2(x + 3, row), 0)) * h;
#endif
        }
    }
    float fire_rate = u_fire_rate;
#ifdef GRAFT
    for (int t = 0; t < OUT_COUNT; t++) update[t] = (1.0 - blend) * update[t] + blend * update_b[t];
    fire_rate = (1.0 - blend) * u_fire_rate + blend * u_fire_rate_b;
#endif

    // Stochastic cell update: the whole cell fires or not (one draw for all its channels), no rescaling.
    float coin = float(pcg3d(uvec3(uvec2(cell), u_seed)).x >> 8) / 16777216.0;
    float fire = coin < fire_rate ? 1.0 : 0.0;
    vec4 result[OUT_COUNT];
    for (int t = 0; t < OUT_COUNT; t++) result[t] = texelFetch(u_state, ivec3(cell, OUT_BASE + t), 0) + fire * update[t];

    o0 = result[0];
#if OUT_COUNT > 1
    o1 = result[1];
#endif
#if OUT_COUNT > 2
    o2 = result[2];
#endif
#if OUT_COUNT > 3
    o3 = result[3];
#endif
#if OUT_COUNT > 4
    o4 = result[4];
#endif
#if OUT_COUNT > 5
    o5 = result[5];
#endif
#if OUT_COUNT > 6
    o6 = result[6];
#endif
#if OUT_COUNT > 7
    o7 = result[7];
#endif
}
