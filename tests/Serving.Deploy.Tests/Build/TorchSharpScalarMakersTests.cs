using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Serving.Build;

namespace Serving.Deploy.Tests.Build;

/// SERV0002 (build/ScalarAnalyzer): its list of TorchSharp members that make a Scalar inside is read here from the IL of
/// the TorchSharp the projects reference, so that an upgrade which changes the set fails with the difference; and the
/// analyzer, run on code against that TorchSharp, reports those members where they are called and not the overloads
/// that take a held Scalar.
public sealed class TorchSharpScalarMakersTests
{
    static readonly string[] TensorApi =
        ["TorchSharp.torch", "TorchSharp.torch+Tensor", "TorchSharp.torch+nn", "TorchSharp.torch+nn+functional", "TorchSharp.torch+linalg",
            "TorchSharp.TensorExtensionMethods"];

    [Fact]
    public void TheListIsWhatTorchSharpsIlMakes()
    {
        var made = MembersThatMakeAScalarInside(typeof(TorchSharp.Scalar).Assembly)
            .Where(m => m.IsPublic && (TensorApi.Contains(m.DeclaringType!.FullName) || m.DeclaringType.IsSubclassOf(typeof(TorchSharp.torch.nn.Module))))
            .Select(Key).Distinct().Order().ToArray();
        Assert.Contains("TorchSharp.torch+Tensor.op_Addition(Tensor, Tensor)", made);   // a + b is a.add(b, 1)
        Assert.Equal(made, TorchSharpScalarMakers.Members.Order().ToArray());
    }

    [Fact]
    public async Task TheAnalyzerReportsThemWhereTheyAreCalled()
    {
        var reported = await AnalyzerSnippet.ReportedAsync("""
            using TorchSharp;
            using static TorchSharp.torch;

            sealed class Step
            {
                static readonly Scalar One = 1.ToScalar(), Half = 0.5.ToScalar();

                Tensor Run(Tensor a, Tensor b)
                {
                    var held = a.add(b, One).mul(Half).sub(b) * b - a;
                    var value = a.sum().item<float>();
                    var sum = a + b;
                    sum += b;
                    var scaled = a * 0.5;
                    var added = a.add(b);
                    var read = a.sum().ToSingle();
                    var cast = (float)a.sum();
                    return held + scaled;
                }
            }
            """, "SERV0002");
        Assert.Equal(["a + b", "sum += b", "a * 0.5", "a.add(b)", "a.sum().ToSingle()", "(float)a.sum()", "held + scaled"], reported);
    }

    /// TorchSharpScalarMakers.Key's form, from reflection.
    static string Key(MethodBase member) =>
        $"{member.DeclaringType!.FullName}.{member.Name}({string.Join(", ", member.GetParameters().Select(p => ParameterType(p.ParameterType)))})";

    static string ParameterType(Type type) =>
        type.IsByRef ? ParameterType(type.GetElementType()!) + "&"
        : type.IsArray ? ParameterType(type.GetElementType()!) + "[]"
        : Nullable.GetUnderlyingType(type) is { } value ? ParameterType(value) + "?"
        : type.Name;

    /// Every method of the assembly whose body makes a Scalar (an implicit conversion to Scalar, a ToScalar) and
    /// disposes none, and every method that calls one of those, directly or through others.
    static IEnumerable<MethodBase> MembersThatMakeAScalarInside(Assembly assembly)
    {
        using var stream = File.OpenRead(assembly.Location);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        var makers = new HashSet<MethodDefinitionHandle>();
        var callers = new Dictionary<MethodDefinitionHandle, List<MethodDefinitionHandle>>();
        foreach (var handle in metadata.MethodDefinitions)
        {
            var method = metadata.GetMethodDefinition(handle);
            if (method.RelativeVirtualAddress == 0) continue;
            bool makes = false, disposes = false;
            foreach (var callee in Callees(pe.GetMethodBody(method.RelativeVirtualAddress).GetILReader()))
            {
                var (declaringType, name) = NameOf(metadata, callee);
                makes |= (declaringType == "Scalar" && name == "op_Implicit") || name == "ToScalar";
                disposes |= name == "Dispose";
                if (callee.Kind == HandleKind.MethodDefinition)
                {
                    if (!callers.TryGetValue((MethodDefinitionHandle)callee, out var list)) callers[(MethodDefinitionHandle)callee] = list = [];
                    list.Add(handle);
                }
            }
            if (makes && !disposes) makers.Add(handle);
        }
        var pending = new Queue<MethodDefinitionHandle>(makers);
        while (pending.TryDequeue(out var maker))
            foreach (var caller in callers.GetValueOrDefault(maker) ?? [])
                if (makers.Add(caller)) pending.Enqueue(caller);
        var module = assembly.ManifestModule;
        return makers.Select(h => module.ResolveMethod(MetadataTokens.GetToken(h))!);
    }

    static (string DeclaringType, string Name) NameOf(MetadataReader metadata, EntityHandle callee)
    {
        switch (callee.Kind)
        {
            case HandleKind.MethodDefinition:
                var definition = metadata.GetMethodDefinition((MethodDefinitionHandle)callee);
                return (metadata.GetString(metadata.GetTypeDefinition(definition.GetDeclaringType()).Name), metadata.GetString(definition.Name));
            case HandleKind.MemberReference:
                var reference = metadata.GetMemberReference((MemberReferenceHandle)callee);
                var parent = reference.Parent.Kind == HandleKind.TypeReference ? metadata.GetString(metadata.GetTypeReference((TypeReferenceHandle)reference.Parent).Name) : "";
                return (parent, metadata.GetString(reference.Name));
            case HandleKind.MethodSpecification:
                return NameOf(metadata, metadata.GetMethodSpecification((MethodSpecificationHandle)callee).Method);
            default:
                return ("", "");
        }
    }

    /// The methods a body calls (call, callvirt, newobj, ldftn), walking its IL instruction by instruction.
    static IEnumerable<EntityHandle> Callees(BlobReader il)
    {
        var callees = new List<EntityHandle>();
        while (il.RemainingBytes > 0)
        {
            int first = il.ReadByte();
            var code = (ILOpCode)(first == 0xFE ? 0xFE00 | il.ReadByte() : first);
            switch (code)
            {
                case ILOpCode.Call or ILOpCode.Callvirt or ILOpCode.Newobj or ILOpCode.Ldftn or ILOpCode.Ldvirtftn or ILOpCode.Jmp:
                    callees.Add(MetadataTokens.EntityHandle(il.ReadInt32()));
                    break;
                case ILOpCode.Switch:
                    il.Offset += 4 * il.ReadInt32();
                    break;
                default:
                    il.Offset += OperandSize(code);
                    break;
            }
        }
        return callees;
    }

    static int OperandSize(ILOpCode code) => code switch
    {
        ILOpCode.Ldarg_s or ILOpCode.Ldarga_s or ILOpCode.Starg_s or ILOpCode.Ldloc_s or ILOpCode.Ldloca_s or ILOpCode.Stloc_s
            or ILOpCode.Ldc_i4_s or ILOpCode.Unaligned or ILOpCode.Br_s or ILOpCode.Brfalse_s or ILOpCode.Brtrue_s
            or ILOpCode.Beq_s or ILOpCode.Bge_s or ILOpCode.Bgt_s or ILOpCode.Ble_s or ILOpCode.Blt_s or ILOpCode.Bne_un_s
            or ILOpCode.Bge_un_s or ILOpCode.Bgt_un_s or ILOpCode.Ble_un_s or ILOpCode.Blt_un_s or ILOpCode.Leave_s => 1,
        ILOpCode.Ldarg or ILOpCode.Ldarga or ILOpCode.Starg or ILOpCode.Ldloc or ILOpCode.Ldloca or ILOpCode.Stloc => 2,
        ILOpCode.Ldc_i8 or ILOpCode.Ldc_r8 => 8,
        ILOpCode.Br or ILOpCode.Brfalse or ILOpCode.Brtrue or ILOpCode.Beq or ILOpCode.Bge or ILOpCode.Bgt or ILOpCode.Ble
            or ILOpCode.Blt or ILOpCode.Bne_un or ILOpCode.Bge_un or ILOpCode.Bgt_un or ILOpCode.Ble_un or ILOpCode.Blt_un
            or ILOpCode.Leave or ILOpCode.Ldc_i4 or ILOpCode.Ldc_r4 or ILOpCode.Ldstr or ILOpCode.Ldfld or ILOpCode.Ldflda
            or ILOpCode.Stfld or ILOpCode.Ldsfld or ILOpCode.Ldsflda or ILOpCode.Stsfld or ILOpCode.Ldtoken or ILOpCode.Box
            or ILOpCode.Unbox or ILOpCode.Unbox_any or ILOpCode.Castclass or ILOpCode.Isinst or ILOpCode.Newarr
            or ILOpCode.Ldelema or ILOpCode.Ldelem or ILOpCode.Stelem or ILOpCode.Ldobj or ILOpCode.Stobj or ILOpCode.Cpobj
            or ILOpCode.Initobj or ILOpCode.Sizeof or ILOpCode.Mkrefany or ILOpCode.Refanyval or ILOpCode.Constrained
            or ILOpCode.Calli => 4,
        _ => 0,
    };
}
