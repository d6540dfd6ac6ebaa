// Erase a disc of cells (all their channels to zero), measured on the torus so that it wraps at the edges.
// Same defines and outputs as step.frag: OUT_BASE, OUT_COUNT.
precision highp float;
precision highp int;
precision highp sampler2DArray;

uniform sampler2DArray u_state;
uniform vec2 u_center;   // in cells: x = column, y = row
uniform float u_radius;  // in cells

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

void main() {
    vec2 size = vec2(textureSize(u_state, 0).xy);
    ivec2 cell = ivec2(gl_FragCoord.xy);
    vec2 d = abs(gl_FragCoord.xy - u_center);
    d = min(d, size - d);
    float keep = dot(d, d) < u_radius * u_radius ? 0.0 : 1.0;
    vec4 result[OUT_COUNT];
    for (int t = 0; t < OUT_COUNT; t++) result[t] = keep * texelFetch(u_state, ivec3(cell, OUT_BASE + t), 0);

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
