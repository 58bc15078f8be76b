import Foundation
import Testing
@testable import ScoreSDE

// The U-Net's parameter names and shapes against diffusers' own: the list below is
// `UNet2DModel(...).state_dict()` (name, shape) from diffusers 0.42.1 / torch 2.15, for the
// configuration of Benchmarks/peers/unet_torch.py (1×28×28, (32, 64, 64), 1 layer per block,
// attention on the last level and in the middle, 8 groups, attention_head_dim None), printed by
// Python and pasted here. A diffusers loader/writer is a rename-free copy when these agree.
let diffusersStateDict = """
conv_in.bias 32
conv_in.weight 32,1,3,3
conv_norm_out.bias 32
conv_norm_out.weight 32
conv_out.bias 1
conv_out.weight 1,32,3,3
down_blocks.0.downsamplers.0.conv.bias 32
down_blocks.0.downsamplers.0.conv.weight 32,32,3,3
down_blocks.0.resnets.0.conv1.bias 32
down_blocks.0.resnets.0.conv1.weight 32,32,3,3
down_blocks.0.resnets.0.conv2.bias 32
down_blocks.0.resnets.0.conv2.weight 32,32,3,3
down_blocks.0.resnets.0.norm1.bias 32
down_blocks.0.resnets.0.norm1.weight 32
down_blocks.0.resnets.0.norm2.bias 32
down_blocks.0.resnets.0.norm2.weight 32
down_blocks.0.resnets.0.time_emb_proj.bias 32
down_blocks.0.resnets.0.time_emb_proj.weight 32,128
down_blocks.1.downsamplers.0.conv.bias 64
down_blocks.1.downsamplers.0.conv.weight 64,64,3,3
down_blocks.1.resnets.0.conv1.bias 64
down_blocks.1.resnets.0.conv1.weight 64,32,3,3
down_blocks.1.resnets.0.conv2.bias 64
down_blocks.1.resnets.0.conv2.weight 64,64,3,3
down_blocks.1.resnets.0.conv_shortcut.bias 64
down_blocks.1.resnets.0.conv_shortcut.weight 64,32,1,1
down_blocks.1.resnets.0.norm1.bias 32
down_blocks.1.resnets.0.norm1.weight 32
down_blocks.1.resnets.0.norm2.bias 64
down_blocks.1.resnets.0.norm2.weight 64
down_blocks.1.resnets.0.time_emb_proj.bias 64
down_blocks.1.resnets.0.time_emb_proj.weight 64,128
down_blocks.2.attentions.0.group_norm.bias 64
down_blocks.2.attentions.0.group_norm.weight 64
down_blocks.2.attentions.0.to_k.bias 64
down_blocks.2.attentions.0.to_k.weight 64,64
down_blocks.2.attentions.0.to_out.0.bias 64
down_blocks.2.attentions.0.to_out.0.weight 64,64
down_blocks.2.attentions.0.to_q.bias 64
down_blocks.2.attentions.0.to_q.weight 64,64
down_blocks.2.attentions.0.to_v.bias 64
down_blocks.2.attentions.0.to_v.weight 64,64
down_blocks.2.resnets.0.conv1.bias 64
down_blocks.2.resnets.0.conv1.weight 64,64,3,3
down_blocks.2.resnets.0.conv2.bias 64
down_blocks.2.resnets.0.conv2.weight 64,64,3,3
down_blocks.2.resnets.0.norm1.bias 64
down_blocks.2.resnets.0.norm1.weight 64
down_blocks.2.resnets.0.norm2.bias 64
down_blocks.2.resnets.0.norm2.weight 64
down_blocks.2.resnets.0.time_emb_proj.bias 64
down_blocks.2.resnets.0.time_emb_proj.weight 64,128
mid_block.attentions.0.group_norm.bias 64
mid_block.attentions.0.group_norm.weight 64
mid_block.attentions.0.to_k.bias 64
mid_block.attentions.0.to_k.weight 64,64
mid_block.attentions.0.to_out.0.bias 64
mid_block.attentions.0.to_out.0.weight 64,64
mid_block.attentions.0.to_q.bias 64
mid_block.attentions.0.to_q.weight 64,64
mid_block.attentions.0.to_v.bias 64
mid_block.attentions.0.to_v.weight 64,64
mid_block.resnets.0.conv1.bias 64
mid_block.resnets.0.conv1.weight 64,64,3,3
mid_block.resnets.0.conv2.bias 64
mid_block.resnets.0.conv2.weight 64,64,3,3
mid_block.resnets.0.norm1.bias 64
mid_block.resnets.0.norm1.weight 64
mid_block.resnets.0.norm2.bias 64
mid_block.resnets.0.norm2.weight 64
mid_block.resnets.0.time_emb_proj.bias 64
mid_block.resnets.0.time_emb_proj.weight 64,128
mid_block.resnets.1.conv1.bias 64
mid_block.resnets.1.conv1.weight 64,64,3,3
mid_block.resnets.1.conv2.bias 64
mid_block.resnets.1.conv2.weight 64,64,3,3
mid_block.resnets.1.norm1.bias 64
mid_block.resnets.1.norm1.weight 64
mid_block.resnets.1.norm2.bias 64
mid_block.resnets.1.norm2.weight 64
mid_block.resnets.1.time_emb_proj.bias 64
mid_block.resnets.1.time_emb_proj.weight 64,128
time_embedding.linear_1.bias 128
time_embedding.linear_1.weight 128,32
time_embedding.linear_2.bias 128
time_embedding.linear_2.weight 128,128
up_blocks.0.attentions.0.group_norm.bias 64
up_blocks.0.attentions.0.group_norm.weight 64
up_blocks.0.attentions.0.to_k.bias 64
up_blocks.0.attentions.0.to_k.weight 64,64
up_blocks.0.attentions.0.to_out.0.bias 64
up_blocks.0.attentions.0.to_out.0.weight 64,64
up_blocks.0.attentions.0.to_q.bias 64
up_blocks.0.attentions.0.to_q.weight 64,64
up_blocks.0.attentions.0.to_v.bias 64
up_blocks.0.attentions.0.to_v.weight 64,64
up_blocks.0.attentions.1.group_norm.bias 64
up_blocks.0.attentions.1.group_norm.weight 64
up_blocks.0.attentions.1.to_k.bias 64
up_blocks.0.attentions.1.to_k.weight 64,64
up_blocks.0.attentions.1.to_out.0.bias 64
up_blocks.0.attentions.1.to_out.0.weight 64,64
up_blocks.0.attentions.1.to_q.bias 64
up_blocks.0.attentions.1.to_q.weight 64,64
up_blocks.0.attentions.1.to_v.bias 64
up_blocks.0.attentions.1.to_v.weight 64,64
up_blocks.0.resnets.0.conv1.bias 64
up_blocks.0.resnets.0.conv1.weight 64,128,3,3
up_blocks.0.resnets.0.conv2.bias 64
up_blocks.0.resnets.0.conv2.weight 64,64,3,3
up_blocks.0.resnets.0.conv_shortcut.bias 64
up_blocks.0.resnets.0.conv_shortcut.weight 64,128,1,1
up_blocks.0.resnets.0.norm1.bias 128
up_blocks.0.resnets.0.norm1.weight 128
up_blocks.0.resnets.0.norm2.bias 64
up_blocks.0.resnets.0.norm2.weight 64
up_blocks.0.resnets.0.time_emb_proj.bias 64
up_blocks.0.resnets.0.time_emb_proj.weight 64,128
up_blocks.0.resnets.1.conv1.bias 64
up_blocks.0.resnets.1.conv1.weight 64,128,3,3
up_blocks.0.resnets.1.conv2.bias 64
up_blocks.0.resnets.1.conv2.weight 64,64,3,3
up_blocks.0.resnets.1.conv_shortcut.bias 64
up_blocks.0.resnets.1.conv_shortcut.weight 64,128,1,1
up_blocks.0.resnets.1.norm1.bias 128
up_blocks.0.resnets.1.norm1.weight 128
up_blocks.0.resnets.1.norm2.bias 64
up_blocks.0.resnets.1.norm2.weight 64
up_blocks.0.resnets.1.time_emb_proj.bias 64
up_blocks.0.resnets.1.time_emb_proj.weight 64,128
up_blocks.0.upsamplers.0.conv.bias 64
up_blocks.0.upsamplers.0.conv.weight 64,64,3,3
up_blocks.1.resnets.0.conv1.bias 64
up_blocks.1.resnets.0.conv1.weight 64,128,3,3
up_blocks.1.resnets.0.conv2.bias 64
up_blocks.1.resnets.0.conv2.weight 64,64,3,3
up_blocks.1.resnets.0.conv_shortcut.bias 64
up_blocks.1.resnets.0.conv_shortcut.weight 64,128,1,1
up_blocks.1.resnets.0.norm1.bias 128
up_blocks.1.resnets.0.norm1.weight 128
up_blocks.1.resnets.0.norm2.bias 64
up_blocks.1.resnets.0.norm2.weight 64
up_blocks.1.resnets.0.time_emb_proj.bias 64
up_blocks.1.resnets.0.time_emb_proj.weight 64,128
up_blocks.1.resnets.1.conv1.bias 64
up_blocks.1.resnets.1.conv1.weight 64,96,3,3
up_blocks.1.resnets.1.conv2.bias 64
up_blocks.1.resnets.1.conv2.weight 64,64,3,3
up_blocks.1.resnets.1.conv_shortcut.bias 64
up_blocks.1.resnets.1.conv_shortcut.weight 64,96,1,1
up_blocks.1.resnets.1.norm1.bias 96
up_blocks.1.resnets.1.norm1.weight 96
up_blocks.1.resnets.1.norm2.bias 64
up_blocks.1.resnets.1.norm2.weight 64
up_blocks.1.resnets.1.time_emb_proj.bias 64
up_blocks.1.resnets.1.time_emb_proj.weight 64,128
up_blocks.1.upsamplers.0.conv.bias 64
up_blocks.1.upsamplers.0.conv.weight 64,64,3,3
up_blocks.2.resnets.0.conv1.bias 32
up_blocks.2.resnets.0.conv1.weight 32,96,3,3
up_blocks.2.resnets.0.conv2.bias 32
up_blocks.2.resnets.0.conv2.weight 32,32,3,3
up_blocks.2.resnets.0.conv_shortcut.bias 32
up_blocks.2.resnets.0.conv_shortcut.weight 32,96,1,1
up_blocks.2.resnets.0.norm1.bias 96
up_blocks.2.resnets.0.norm1.weight 96
up_blocks.2.resnets.0.norm2.bias 32
up_blocks.2.resnets.0.norm2.weight 32
up_blocks.2.resnets.0.time_emb_proj.bias 32
up_blocks.2.resnets.0.time_emb_proj.weight 32,128
up_blocks.2.resnets.1.conv1.bias 32
up_blocks.2.resnets.1.conv1.weight 32,64,3,3
up_blocks.2.resnets.1.conv2.bias 32
up_blocks.2.resnets.1.conv2.weight 32,32,3,3
up_blocks.2.resnets.1.conv_shortcut.bias 32
up_blocks.2.resnets.1.conv_shortcut.weight 32,64,1,1
up_blocks.2.resnets.1.norm1.bias 64
up_blocks.2.resnets.1.norm1.weight 64
up_blocks.2.resnets.1.norm2.bias 32
up_blocks.2.resnets.1.norm2.weight 32
up_blocks.2.resnets.1.time_emb_proj.bias 32
up_blocks.2.resnets.1.time_emb_proj.weight 32,128
"""

@Suite("U-Net diffusers names") struct NetworksDiffusersNamesTests {
    @Test func namesAndShapesMatchDiffusers() throws {
        let c = UNetConfiguration(imageSize: 28, channels: 1, blockOutChannels: [32, 64, 64], layersPerBlock: 1,
                                  attentionLevels: [false, false, true], midBlockAttention: true, normGroups: 8)
        let net = try UNet<Float>(c)
        let ours = Set(net.layout.refs.map { "\($0.name) \($0.shape.map(String.init).joined(separator: ","))" })
        let theirs = Set(diffusersStateDict.split(separator: "\n").map(String.init))
        #expect(theirs.count == 182)
        #expect(ours == theirs, "only ours: \(ours.subtracting(theirs).sorted().prefix(5)); only diffusers: \(theirs.subtracting(ours).sorted().prefix(5))")
    }
}
