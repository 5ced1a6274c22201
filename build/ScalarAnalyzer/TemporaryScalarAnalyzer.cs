using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Serving.Build;

/// Reports a TorchSharp Scalar made for one call and dropped in it: a number where a tensor operation takes a Scalar
/// (`x.pow(2)`, `x.masked_fill(mask, 0)`; `x * 0.5` converts its number inside TorchSharp, SERV0002's), a cast to Scalar or
/// `value.ToScalar()` written as the argument. TorchSharp reads
/// the Scalar's native handle and calls into libtorch; nothing keeps the temporary reachable through that call, so the
/// GC may finalize it (freeing the native value) while libtorch reads it: "Unknown scalar type", seen in CI. A Scalar
/// someone holds (a static field, Serving.Engine.HeldScalars, a field of the object that uses it, or
/// `using var s = value.ToScalar();` through the call) lives through the call.
/// SERV0002 reports the same hazard one level down: a TorchSharp member that makes such a Scalar inside (`a + b`, which
/// is `a.add(b, 1)`; `x * 0.5`; `t.ToSingle()`), listed in TorchSharpScalarMakers.
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class TemporaryScalarAnalyzer : DiagnosticAnalyzer
{
    public static readonly DiagnosticDescriptor TemporaryScalar = new(
        id: "SERV0001",
        title: "A temporary TorchSharp Scalar may be finalized during the call that reads it",
        messageFormat: "'{0}' becomes a temporary Scalar that nothing holds through the native call; pass a held Scalar (HeldScalars, a field, or 'using var s = value.ToScalar();')",
        category: "Reliability",
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    public static readonly DiagnosticDescriptor ScalarMadeInsideTorchSharp = new(
        id: "SERV0002",
        title: "A TorchSharp member makes a Scalar inside that nothing holds through its native call",
        messageFormat: "'{0}' runs TorchSharp's {1}, which makes a Scalar of its own that the GC may finalize during the native call; {2}",
        category: "Reliability",
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => ImmutableArray.Create(TemporaryScalar, ScalarMadeInsideTorchSharp);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            if (scalar is null) return;
            start.RegisterOperationAction(c => ReportConversion(c, scalar), OperationKind.Conversion);
            start.RegisterOperationAction(c => ReportInlineToScalar(c, scalar), OperationKind.Invocation);
            start.RegisterOperationAction(ReportMemberThatMakesAScalar, OperationKind.Invocation, OperationKind.BinaryOperator,
                OperationKind.CompoundAssignment, OperationKind.UnaryOperator, OperationKind.Conversion);
        });
    }

    // a number (or bool) converted to a Scalar, implicitly or by a cast, where it is passed: the conversion's result is
    // the temporary
    static void ReportConversion(OperationAnalysisContext context, INamedTypeSymbol scalar)
    {
        var conversion = (IConversionOperation)context.Operation;
        if (!conversion.Conversion.IsUserDefined) return;
        if (!SymbolEqualityComparer.Default.Equals(conversion.Type, scalar)) return;
        if (IsHeld(conversion)) return;
        context.ReportDiagnostic(Diagnostic.Create(TemporaryScalar, conversion.Syntax.GetLocation(), conversion.Operand.Syntax.ToString()));
    }

    // value.ToScalar() written straight into a call's arguments
    static void ReportInlineToScalar(OperationAnalysisContext context, INamedTypeSymbol scalar)
    {
        var invocation = (IInvocationOperation)context.Operation;
        if (invocation.TargetMethod.Name != "ToScalar" || !SymbolEqualityComparer.Default.Equals(invocation.Type, scalar)) return;
        if (IsHeld(invocation)) return;
        context.ReportDiagnostic(Diagnostic.Create(TemporaryScalar, invocation.Syntax.GetLocation(), invocation.Syntax.ToString()));
    }

    // SERV0002: a call, operator or conversion whose TorchSharp member makes a Scalar inside and passes it on unheld
    // (`a + b` is `a.add(b, 1)`, `x * 0.5` converts the 0.5 inside, `t.ToSingle()` reads a Scalar it made from t)
    static void ReportMemberThatMakesAScalar(OperationAnalysisContext context)
    {
        var member = context.Operation switch
        {
            IInvocationOperation invocation => invocation.TargetMethod,
            IBinaryOperation binary => binary.OperatorMethod,
            ICompoundAssignmentOperation compound => compound.OperatorMethod,
            IUnaryOperation unary => unary.OperatorMethod,
            IConversionOperation conversion => conversion.OperatorMethod,
            _ => null,
        };
        if (member is null || !TorchSharpScalarMakers.Members.Contains(TorchSharpScalarMakers.Key(member))) return;
        context.ReportDiagnostic(Diagnostic.Create(ScalarMadeInsideTorchSharp, context.Operation.Syntax.GetLocation(),
            context.Operation.Syntax.ToString(), member.Name, TorchSharpScalarMakers.Instead(member)));
    }

    // Held rather than passed: a field's or property's initializer or assignment, a `using` local, a return (the caller
    // holds what a factory makes), or an element of a collection or tuple so held. A plain local is not held: the JIT
    // ends its life at its last read, which may be the read of the handle before the native call.
    static bool IsHeld(IOperation made)
    {
        var parent = made.Parent;
        while (parent is IConversionOperation or IParenthesizedOperation or IConditionalAccessOperation) parent = parent.Parent;
        return parent switch
        {
            IFieldInitializerOperation or IPropertyInitializerOperation or IReturnOperation => true,
            IVariableInitializerOperation initializer => IsUsingLocal(initializer),
            ISimpleAssignmentOperation assignment => assignment.Target is IFieldReferenceOperation or IPropertyReferenceOperation,
            IDeconstructionAssignmentOperation deconstruction => deconstruction.Target is ITupleOperation targets
                && targets.Elements.All(e => e is IFieldReferenceOperation or IPropertyReferenceOperation),
            IArrayInitializerOperation or ITupleOperation or ICollectionExpressionOperation => IsHeld(parent),
            IArrayCreationOperation => IsHeld(parent),
            _ => false,
        };
    }

    static bool IsUsingLocal(IVariableInitializerOperation initializer)
    {
        for (var node = initializer.Parent; node is not null; node = node.Parent)
        {
            if (node is IUsingDeclarationOperation or IUsingOperation) return true;
            if (node is not (IVariableDeclaratorOperation or IVariableDeclarationOperation or IVariableDeclarationGroupOperation)) return false;
        }
        return false;
    }
}
