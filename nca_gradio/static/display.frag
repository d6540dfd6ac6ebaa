// What the canvas shows: the first three channels around mid-grey (nca_gradio.model.to_rgb), row 0 at the top.
precision highp float;
precision highp int;
precision highp sampler2DArray;

uniform sampler2DArray u_state;
#ifdef GRAFT
uniform sampler2D u_mask;     // how much of rule B each cell runs (step.frag)
uniform float u_show_mask;    // 1: tint the cells, orange where rule A runs, blue where B does
#endif
out vec4 color;

void main() {
    ivec2 size = textureSize(u_state, 0).xy;
    ivec2 cell = ivec2(int(gl_FragCoord.x), size.y - 1 - int(gl_FragCoord.y));
    color = vec4(clamp(texelFetch(u_state, ivec3(cell, 0), 0).rgb + 0.5, 0.0, 1.0), 1.0);
#ifdef GRAFT
    float blend = texelFetch(u_mask, cell, 0).r;
#ifdef GRAFT_HARD
    blend = blend >= 0.5 ? 1.0 : 0.0;
#endif
    color.rgb = mix(color.rgb, mix(vec3(1.0, 0.55, 0.0), vec3(0.0, 0.45, 1.0), blend), 0.45 * u_show_mask);
#endif
}
