using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace Serving.Build;

/// The public members of TorchSharp's tensor API (torch, torch.Tensor, torch.nn, torch.nn.functional, torch.linalg,
/// TensorExtensionMethods, and the modules' own methods) that make a Scalar inside and pass it to native code without
/// holding it, directly or through another such member: read from TorchSharp 0.107.0's IL by Serving.Deploy.Tests'
/// TorchSharpScalarMakersTests, which fails with the difference when a TorchSharp upgrade changes the set. A module
/// called through Module.call (its forward reached virtually) is not seen: use the functional form (nn.functional).
public static class TorchSharpScalarMakers
{
    public static readonly HashSet<string> Members = new()
    {
        "TorchSharp.Modules.BatchNorm.forward(Tensor)",
        "TorchSharp.Modules.CELU.forward(Tensor)",
        "TorchSharp.Modules.ELU.forward(Tensor)",
        "TorchSharp.Modules.GaussianNLLLoss.forward(Tensor, Tensor, Tensor)",
        "TorchSharp.Modules.Hardshrink.forward(Tensor)",
        "TorchSharp.Modules.Hardtanh.forward(Tensor)",
        "TorchSharp.Modules.LeakyReLU.forward(Tensor)",
        "TorchSharp.Modules.Mish.forward(Tensor)",
        "TorchSharp.Modules.Softplus.forward(Tensor)",
        "TorchSharp.Modules.Softshrink.forward(Tensor)",
        "TorchSharp.Modules.Softsign.forward(Tensor)",
        "TorchSharp.Modules.Threshold.forward(Tensor)",
        "TorchSharp.TensorExtensionMethods.cstr(Tensor, String, Int32?, String, CultureInfo)",
        "TorchSharp.TensorExtensionMethods.jlstr(Tensor, String, Int32?, String, CultureInfo)",
        "TorchSharp.TensorExtensionMethods.metastr(Tensor)",
        "TorchSharp.TensorExtensionMethods.npstr(Tensor, String, Int32?, String, CultureInfo)",
        "TorchSharp.TensorExtensionMethods.print(Tensor, String, Int32?, String, CultureInfo, TensorStringStyle)",
        "TorchSharp.TensorExtensionMethods.str(Tensor, String, Int32?, String, CultureInfo, TensorStringStyle)",
        "TorchSharp.TensorExtensionMethods.ToBFloat16(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToBoolean(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToByte(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToComplex32(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToComplex64(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToComplexFloat32(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToComplexFloat64(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToDouble(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToHalf(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToInt16(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToInt32(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToInt64(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToSByte(Tensor)",
        "TorchSharp.TensorExtensionMethods.ToSingle(Tensor)",
        "TorchSharp.torch.add_(Tensor, Scalar)",
        "TorchSharp.torch.add_(Tensor, Tensor)",
        "TorchSharp.torch.add(Tensor, Scalar)",
        "TorchSharp.torch.add(Tensor, Tensor)",
        "TorchSharp.torch.arange(Scalar, Scalar, ScalarType?, Device, Boolean)",
        "TorchSharp.torch.arange(Scalar, ScalarType?, Device, Boolean)",
        "TorchSharp.torch.histogram(Tensor, HistogramBinSelector, ValueTuple`2?, Boolean)",
        "TorchSharp.torch.normal(Double, Double, ReadOnlySpan`1, ScalarType?, Device, Boolean, Generator, String[])",
        "TorchSharp.torch.normal(Tensor, Tensor, Generator)",
        "TorchSharp.torch.square(Tensor)",
        "TorchSharp.torch+jit+ScriptModule.call(Object[])",
        "TorchSharp.torch+jit+ScriptModule.forward(Object[])",
        "TorchSharp.torch+jit+ScriptModule.invoke(String, Object[])",
        "TorchSharp.torch+jit+ScriptModule.invoke(String, T[])",
        "TorchSharp.torch+jit+ScriptModule`1.forward(Tensor[])",
        "TorchSharp.torch+jit+ScriptModule`2.forward(T)",
        "TorchSharp.torch+jit+ScriptModule`3.forward(T1, T2)",
        "TorchSharp.torch+linalg.matrix_norm(Tensor, Double, Int64[], Boolean)",
        "TorchSharp.torch+linalg.vector_norm(Tensor, Double, Int64[], Boolean)",
        "TorchSharp.torch+nn.PReLU(Int64, Double, Device, ScalarType?)",
        "TorchSharp.torch+nn+functional.celu(Tensor, Double, Boolean)",
        "TorchSharp.torch+nn+functional.elu(Tensor, Double, Boolean)",
        "TorchSharp.torch+nn+functional.hardshrink(Tensor, Double)",
        "TorchSharp.torch+nn+functional.Hardshrink(Tensor, Double)",
        "TorchSharp.torch+nn+functional.hardtanh(Tensor, Double, Double, Boolean)",
        "TorchSharp.torch+nn+functional.Hardtanh(Tensor, Double, Double, Boolean)",
        "TorchSharp.torch+nn+functional.leaky_relu(Tensor, Double, Boolean)",
        "TorchSharp.torch+nn+functional.mish(Tensor, Boolean)",
        "TorchSharp.torch+nn+functional.Mish(Tensor)",
        "TorchSharp.torch+nn+functional.softplus(Tensor, Double, Double)",
        "TorchSharp.torch+nn+functional.softshrink(Tensor, Double)",
        "TorchSharp.torch+nn+functional.Softshrink(Tensor, Double)",
        "TorchSharp.torch+nn+functional.softsign(Tensor, Boolean)",
        "TorchSharp.torch+nn+functional.Softsign(Tensor)",
        "TorchSharp.torch+nn+functional.threshold(Tensor, Double, Double, Boolean)",
        "TorchSharp.torch+nn+functional.Threshold(Tensor, Double, Double, Boolean)",
        "TorchSharp.torch+Tensor.add_(Scalar)",
        "TorchSharp.torch+Tensor.add_(Tensor)",
        "TorchSharp.torch+Tensor.add(Scalar)",
        "TorchSharp.torch+Tensor.add(Tensor)",
        "TorchSharp.torch+Tensor.addcdiv_(Tensor, Tensor)",
        "TorchSharp.torch+Tensor.addcdiv(Tensor, Tensor)",
        "TorchSharp.torch+Tensor.celu_()",
        "TorchSharp.torch+Tensor.celu()",
        "TorchSharp.torch+Tensor.elu_(Double)",
        "TorchSharp.torch+Tensor.elu(Double)",
        "TorchSharp.torch+Tensor.op_Addition(Double, Tensor)",
        "TorchSharp.torch+Tensor.op_Addition(Int32, Tensor)",
        "TorchSharp.torch+Tensor.op_Addition(Int64, Tensor)",
        "TorchSharp.torch+Tensor.op_Addition(Scalar, Tensor)",
        "TorchSharp.torch+Tensor.op_Addition(Single, Tensor)",
        "TorchSharp.torch+Tensor.op_Addition(Tensor, Double)",
        "TorchSharp.torch+Tensor.op_Addition(Tensor, Int32)",
        "TorchSharp.torch+Tensor.op_Addition(Tensor, Int64)",
        "TorchSharp.torch+Tensor.op_Addition(Tensor, Scalar)",
        "TorchSharp.torch+Tensor.op_Addition(Tensor, Single)",
        "TorchSharp.torch+Tensor.op_Addition(Tensor, Tensor)",
        "TorchSharp.torch+Tensor.op_Division(Double, Tensor)",
        "TorchSharp.torch+Tensor.op_Division(Int32, Tensor)",
        "TorchSharp.torch+Tensor.op_Division(Int64, Tensor)",
        "TorchSharp.torch+Tensor.op_Division(Single, Tensor)",
        "TorchSharp.torch+Tensor.op_Division(Tensor, Double)",
        "TorchSharp.torch+Tensor.op_Division(Tensor, Int32)",
        "TorchSharp.torch+Tensor.op_Division(Tensor, Int64)",
        "TorchSharp.torch+Tensor.op_Division(Tensor, Single)",
        "TorchSharp.torch+Tensor.op_Explicit(Tensor)",
        "TorchSharp.torch+Tensor.op_Modulus(Tensor, Double)",
        "TorchSharp.torch+Tensor.op_Modulus(Tensor, Int32)",
        "TorchSharp.torch+Tensor.op_Modulus(Tensor, Int64)",
        "TorchSharp.torch+Tensor.op_Modulus(Tensor, Single)",
        "TorchSharp.torch+Tensor.op_Multiply(Double, Tensor)",
        "TorchSharp.torch+Tensor.op_Multiply(Int32, Tensor)",
        "TorchSharp.torch+Tensor.op_Multiply(Int64, Tensor)",
        "TorchSharp.torch+Tensor.op_Multiply(Single, Tensor)",
        "TorchSharp.torch+Tensor.op_Multiply(Tensor, Double)",
        "TorchSharp.torch+Tensor.op_Multiply(Tensor, Int32)",
        "TorchSharp.torch+Tensor.op_Multiply(Tensor, Int64)",
        "TorchSharp.torch+Tensor.op_Multiply(Tensor, Single)",
        "TorchSharp.torch+Tensor.op_Subtraction(Double, Tensor)",
        "TorchSharp.torch+Tensor.op_Subtraction(Int32, Tensor)",
        "TorchSharp.torch+Tensor.op_Subtraction(Int64, Tensor)",
        "TorchSharp.torch+Tensor.op_Subtraction(Scalar, Tensor)",
        "TorchSharp.torch+Tensor.op_Subtraction(Single, Tensor)",
        "TorchSharp.torch+Tensor.op_Subtraction(Tensor, Double)",
        "TorchSharp.torch+Tensor.op_Subtraction(Tensor, Int32)",
        "TorchSharp.torch+Tensor.op_Subtraction(Tensor, Int64)",
        "TorchSharp.torch+Tensor.op_Subtraction(Tensor, Single)",
        "TorchSharp.torch+Tensor.softplus(Double, Double)",
        "TorchSharp.torch+Tensor.square()",
        "TorchSharp.torch+Tensor.tolist()",
        "TorchSharp.torch+Tensor.ToString(Boolean, String, Int32?, CultureInfo, String)",
        "TorchSharp.torch+Tensor.ToString(TensorStringStyle, String, Int32?, CultureInfo, String)",
    };

    /// What to write instead, by the member's kind.
    public static string Instead(IMethodSymbol member) => member.Name switch
    {
        "op_Addition" or "add" or "add_" => "add with a held alpha: a.add(b, HeldScalars.One)",
        "op_Subtraction" or "op_Multiply" or "op_Division" or "op_Modulus" => "pass a held Scalar to sub, mul, div or remainder (HeldScalars, a field, a using local)",
        "op_Explicit" or "ToSingle" or "ToDouble" or "ToInt64" or "ToInt32" or "ToBoolean" => "read the value with item<T>()",
        _ => "call the overload that takes every Scalar, each held",
    };

    /// A member as "Type+Nested.Name(Parameter, Types)": the containing types as reflection's Type.FullName writes
    /// them, each parameter by its type's metadata name ("T?" for Nullable<T>, "T[]" for an array, "T&" by reference).
    public static string Key(IMethodSymbol member)
    {
        member = member.ReducedFrom ?? member.OriginalDefinition;
        return $"{TypeFullName(member.ContainingType)}.{member.Name}({string.Join(", ", member.Parameters.Select(p => ParameterType(p.Type) + (p.RefKind == RefKind.None ? "" : "&")))})";
    }

    static string TypeFullName(INamedTypeSymbol type) => type.ContainingType is { } outer
        ? TypeFullName(outer) + "+" + type.MetadataName
        : (type.ContainingNamespace.IsGlobalNamespace ? "" : type.ContainingNamespace.ToDisplayString() + ".") + type.MetadataName;

    static string ParameterType(ITypeSymbol type) => type switch
    {
        IArrayTypeSymbol array => ParameterType(array.ElementType) + "[]",
        INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T } nullable => ParameterType(nullable.TypeArguments[0]) + "?",
        _ => type.MetadataName,
    };
}
