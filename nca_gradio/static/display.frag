// What the canvas shows: the first three channels around mid-grey (nca_gradio.model.to_rgb), row 0 at the top.
precision highp float;
precision highp int;
precision highp sampler2DArray;

uniform sampler2DArray u_state;
out vec4 color;

void main() {
    ivec2 size = textureSize(u_state, 0).xy;
    ivec2 cell = ivec2(int(gl_FragCoord.x), size.y - 1 - int(gl_FragCoord.y));
    color = vec4(clamp(texelFetch(u_state, ivec3(cell, 0), 0).rgb + 0.5, 0.0, 1.0), 1.0);
}
